//! C2SP tlog-tiles paths: `<L>/<N>[.p/<W>]` for hash tiles and `entries/<N>[.p/<W>]` for entry bundles.

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;

/// A tile request, parsed from `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`.
#[derive(Debug, PartialEq, Eq)]
pub struct TileRequest {
    /// `None` for an entry bundle.
    pub level: Option<u8>,
    pub index: u64,
    /// `None` for a full tile.
    pub width: Option<u64>,
}

/// Parses the tlog-tiles path form, where N is written in groups of three digits, all but the last with
/// an `x` prefix (1234067 is `x001/x234/067`).
pub fn parse_path(path: &str) -> Option<TileRequest> {
    let (head, rest) = path.split_once('/')?;
    let level = match head {
        "entries" => None,
        l if !l.is_empty()
            && l.len() <= 2
            && l.bytes().all(|b| b.is_ascii_digit())
            && (l == "0" || !l.starts_with('0')) =>
        {
            let level: u8 = l.parse().ok()?;
            // Level L tiles hold tree level 8L; a 64-bit tree has no level beyond 63.
            (level <= 7).then_some(level)?.into()
        }
        _ => return None,
    };
    let (n_path, width) = match rest.rsplit_once(".p/") {
        Some((n, w)) => {
            if w.is_empty() || w.len() > 3 || !w.bytes().all(|b| b.is_ascii_digit()) || w.starts_with('0') {
                return None;
            }
            let w: u64 = w.parse().ok()?;
            if !(1..TILE_WIDTH).contains(&w) {
                return None;
            }
            (n, Some(w))
        }
        None => (rest, None),
    };
    let parts: Vec<&str> = n_path.split('/').collect();
    if parts.is_empty() || parts.len() > 7 {
        return None;
    }
    let mut index: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let digits = if i + 1 < parts.len() { part.strip_prefix('x')? } else { part };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(digits.parse::<u64>().ok()?)?;
    }
    Some(TileRequest { level, index, width })
}

/// Formats a tile path; the inverse of [`parse_path`].
pub fn format_path(request: &TileRequest) -> String {
    let mut groups = Vec::new();
    let mut n = request.index;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    let mut out = match request.level {
        Some(level) => level.to_string(),
        None => "entries".to_owned(),
    };
    for (i, g) in groups.iter().rev().enumerate() {
        out.push('/');
        if i < last {
            out.push('x');
        }
        out.push_str(&format!("{g:03}"));
    }
    if let Some(w) = request.width {
        out.push_str(&format!(".p/{w}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_follow_tlog_tiles() {
        let t = |level, index, width| Some(TileRequest { level, index, width });
        assert_eq!(parse_path("0/000"), t(Some(0), 0, None));
        assert_eq!(parse_path("1/x001/x234/067"), t(Some(1), 1_234_067, None));
        assert_eq!(parse_path("0/005.p/7"), t(Some(0), 5, Some(7)));
        assert_eq!(parse_path("entries/x001/002.p/255"), t(None, 1002, Some(255)));
        for bad in [
            "0/5",
            "0/0005",
            "00/000",
            "8/000",
            "0/001/002",
            "0/x001",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/07",
            "entries/",
            "x/000",
            "0/00a",
            "0/x1234/000",
            "0/000.p/",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn formatting_inverts_parsing() {
        for (level, index, width) in
            [(Some(0), 0, None), (Some(2), 1_234_067, Some(9)), (None, 999, None), (None, 1000, Some(1))]
        {
            let r = TileRequest { level, index, width };
            assert_eq!(parse_path(&format_path(&r)), Some(r));
        }
        assert_eq!(format_path(&TileRequest { level: Some(1), index: 1_234_067, width: None }), "1/x001/x234/067");
    }
}

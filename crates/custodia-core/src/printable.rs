//! QR codes with a human-readable label under them, and the printable emergency card, as PNG, SVG and
//! PDF bytes. A person who cannot scan a code should still read what it is; a card found in a wallet
//! should say what it is for.
//!
//! PNG labels are drawn with a built-in 5x7 pixel font (upper-case letters, digits and common punctuation;
//! other characters print as `?`), so no font file is needed. SVG and PDF use real text (PDF's built-in
//! Helvetica), and draw the QR code as vector squares so it prints sharp at any size.

use std::fmt::Write as _;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, GrayImage, ImageEncoder, Luma};

use crate::qr::{QrError, qr_modules};

/// Pixels per QR module in PNGs.
const MODULE_PX: u32 = 8;
/// Quiet zone around a QR code, in modules (the standard's minimum).
const QUIET: u32 = 4;
/// Pixels per font pixel for labels in PNGs.
const FONT_SCALE: u32 = 3;
const GLYPH_W: u32 = 5;
const GLYPH_H: u32 = 7;
/// The most lines a label wraps to.
const MAX_LABEL_LINES: usize = 3;
/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 120;

/// What an emergency card shows unless the patient says otherwise: allergies, medications, conditions and
/// blood type. Nothing sensitive.
pub const CARD_SCOPES: &[&str] = &[
    "patient/AllergyIntolerance.rs",
    "patient/MedicationRequest.rs",
    "patient/Condition.rs",
    "patient/Observation.rs?code=http://loinc.org|882-1",
];

/// Plain words for what a card's scopes and labels cover, as printed on it ("allergies, medications").
pub fn covered_words(scopes: &[String], labels: &[String]) -> String {
    let mut words: Vec<String> = Vec::new();
    for s in scopes {
        let word = match s.as_str() {
            "patient/AllergyIntolerance.rs" => "allergies".to_owned(),
            "patient/MedicationRequest.rs" | "patient/MedicationStatement.rs" => "medications".to_owned(),
            "patient/Condition.rs" => "conditions".to_owned(),
            "patient/Observation.rs?code=http://loinc.org|882-1" => "blood type".to_owned(),
            "patient/Immunization.rs" => "immunizations".to_owned(),
            "patient/Observation.rs?category=laboratory" => "lab results".to_owned(),
            other => other.trim_start_matches("patient/").to_owned(),
        };
        if !words.contains(&word) {
            words.push(word);
        }
    }
    if !labels.is_empty() {
        words.push(format!("sensitive records ({})", labels.join(", ")));
    }
    words.join(", ")
}

/// What the emergency card says beside its code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardFace {
    /// The patient's name as they want it printed.
    pub name: String,
    /// Plain words for what the card lets emergency staff see ("allergies, medications, blood type").
    pub covers: String,
    /// Until when the card's grant stands.
    pub valid_until: String,
}

fn check_label(label: &str) -> Result<(), QrError> {
    if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(QrError::Malformed("a label is at most 120 characters, with no control characters"));
    }
    Ok(())
}

/// Splits `text` into at most `max_lines` lines of at most `width` characters, at spaces where it can.
fn wrap(text: &str, width: usize, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while !word.is_empty() {
            let used = line.chars().count();
            let room = if used == 0 { width } else { width.saturating_sub(used + 1) };
            if word.len() <= room {
                if used > 0 {
                    line.push(' ');
                }
                line.extend(word.drain(..));
            } else if used > 0 {
                lines.push(std::mem::take(&mut line));
            } else {
                line.extend(word.drain(..width.max(1)));
                lines.push(std::mem::take(&mut line));
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            let keep: String = last.chars().take(width.saturating_sub(1)).collect();
            *last = format!("{keep}…");
        }
    }
    lines
}

/// The rows of a glyph, five bits each, most significant bit on the left.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        'A' => [14, 17, 17, 17, 31, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [28, 18, 17, 17, 17, 18, 28],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 17, 10, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        ' ' => [0; 7],
        '-' | '–' | '—' => [0, 0, 0, 31, 0, 0, 0],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        '…' => [0, 0, 0, 0, 0, 21, 21],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '\'' | '’' => [12, 4, 8, 0, 0, 0, 0],
        '/' => [0, 1, 2, 4, 8, 16, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        '+' => [0, 4, 4, 31, 4, 4, 0],
        '&' => [12, 18, 20, 8, 21, 18, 13],
        '·' => [0, 0, 0, 12, 12, 0, 0],
        _ => [14, 17, 1, 2, 4, 0, 4],
    }
}

fn text_width_px(text: &str, scale: u32) -> u32 {
    (text.chars().count() as u32 * (GLYPH_W + 1)).saturating_sub(1) * scale
}

/// Draws `text` in black with its top-left corner at (x, y).
fn draw_text(img: &mut GrayImage, text: &str, x: u32, y: u32, scale: u32) {
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as u32 * (GLYPH_W + 1) * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                    fill(img, gx + col * scale, y + row as u32 * scale, scale, scale);
                }
            }
        }
    }
}

fn fill(img: &mut GrayImage, x: u32, y: u32, w: u32, h: u32) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            img.put_pixel(xx, yy, Luma([0]));
        }
    }
}

fn draw_qr(img: &mut GrayImage, modules: &[Vec<bool>], x: u32, y: u32, px: u32) {
    for (row, line) in modules.iter().enumerate() {
        for (col, &dark) in line.iter().enumerate() {
            if dark {
                fill(img, x + col as u32 * px, y + row as u32 * px, px, px);
            }
        }
    }
}

fn encode_png(img: &GrayImage) -> Result<Vec<u8>, QrError> {
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(img.as_raw(), img.width(), img.height(), ExtendedColorType::L8)
        .map_err(|_| QrError::Render)?;
    Ok(png)
}

/// A QR code (level M, version 15 at most) with `label` printed under it, as PNG bytes.
pub fn qr_png(text: &str, label: &str) -> Result<Vec<u8>, QrError> {
    check_label(label)?;
    let modules = qr_modules(text)?;
    let side = (modules.len() as u32 + 2 * QUIET) * MODULE_PX;
    let per_line = (side / ((GLYPH_W + 1) * FONT_SCALE)).max(1) as usize;
    let lines = wrap(label, per_line.saturating_sub(2), MAX_LABEL_LINES);
    let line_h = (GLYPH_H + 3) * FONT_SCALE;
    let height = side + lines.len() as u32 * line_h + if lines.is_empty() { 0 } else { MODULE_PX * 2 };
    let mut img = GrayImage::from_pixel(side, height, Luma([255]));
    draw_qr(&mut img, &modules, QUIET * MODULE_PX, QUIET * MODULE_PX, MODULE_PX);
    for (i, line) in lines.iter().enumerate() {
        let x = side.saturating_sub(text_width_px(line, FONT_SCALE)) / 2;
        draw_text(&mut img, line, x, side - MODULE_PX + i as u32 * line_h, FONT_SCALE);
    }
    encode_png(&img)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The dark modules as one SVG path, each a unit square, offset by the quiet zone.
fn svg_path(modules: &[Vec<bool>], x0: f32, y0: f32, unit: f32) -> String {
    let mut d = String::new();
    for (row, line) in modules.iter().enumerate() {
        for (col, &dark) in line.iter().enumerate() {
            if dark {
                let _ = write!(d, "M{} {}h{unit}v{unit}h-{unit}z", x0 + col as f32 * unit, y0 + row as f32 * unit);
            }
        }
    }
    d
}

/// A QR code with `label` under it, as an SVG document.
pub fn qr_svg(text: &str, label: &str) -> Result<String, QrError> {
    check_label(label)?;
    let modules = qr_modules(text)?;
    let unit = MODULE_PX as f32;
    let side = (modules.len() as f32 + 2.0 * QUIET as f32) * unit;
    let lines = wrap(label, ((side / 11.0) as usize).max(8), MAX_LABEL_LINES);
    let height = side + lines.len() as f32 * 24.0 + if lines.is_empty() { 0.0 } else { 8.0 };
    let mut svg = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" \
         width=\"{side}\" height=\"{height}\" viewBox=\"0 0 {side} {height}\">\n<title>{}</title>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n<path fill=\"#000\" d=\"{}\"/>\n",
        xml_escape(label),
        svg_path(&modules, QUIET as f32 * unit, QUIET as f32 * unit, unit)
    );
    for (i, line) in lines.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"18\" \
             text-anchor=\"middle\" fill=\"#000\">{}</text>",
            side / 2.0,
            side + i as f32 * 24.0,
            xml_escape(line)
        );
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// What the card tells whoever finds it.
const CARD_INSTRUCTIONS: &str = "Emergency staff: scan with Custodia. For enrolled emergency providers only; every read is logged and the patient told.";

/// The card's lines of text, top to bottom, with a relative size (1 = body text).
fn card_lines(face: &CardFace) -> Vec<(String, f32)> {
    let mut lines = vec![("EMERGENCY HEALTH CARD".to_owned(), 1.5), (face.name.clone(), 1.3)];
    for line in wrap(&format!("Shows: {}", face.covers), 26, 5) {
        lines.push((line, 1.0));
    }
    lines.push((format!("Valid until {}", face.valid_until), 1.0));
    for line in wrap(CARD_INSTRUCTIONS, 30, 5) {
        lines.push((line, 0.8));
    }
    lines
}

fn check_face(face: &CardFace) -> Result<(), QrError> {
    for text in [&face.name, &face.covers, &face.valid_until] {
        check_label(text)?;
    }
    Ok(())
}

/// The emergency card at credit-card shape (85.6 x 54 mm at 300 dpi) as PNG bytes: text on the left, the
/// code on the right.
pub fn card_png(text: &str, face: &CardFace) -> Result<Vec<u8>, QrError> {
    check_face(face)?;
    let modules = qr_modules(text)?;
    let (w, h) = (1011u32, 638u32);
    let mut img = GrayImage::from_pixel(w, h, Luma([255]));
    // A thin border to cut along.
    for (x, y, bw, bh) in [(0, 0, w, 3), (0, h - 3, w, 3), (0, 0, 3, h), (w - 3, 0, 3, h)] {
        fill(&mut img, x, y, bw, bh);
    }
    let code_px = ((h - 80) / (modules.len() as u32 + 2 * QUIET)).max(2);
    let code_side = code_px * (modules.len() as u32 + 2 * QUIET);
    draw_qr(&mut img, &modules, w - code_side - 20 + QUIET * code_px, (h - code_side) / 2 + QUIET * code_px, code_px);
    let mut y = 40;
    for (line, size) in card_lines(face) {
        let scale = (size * 3.0).round() as u32;
        draw_text(&mut img, &line, 36, y, scale.max(2));
        y += (GLYPH_H + 4) * scale.max(2);
    }
    encode_png(&img)
}

/// The emergency card as an SVG document (85.6 x 54 mm).
pub fn card_svg(text: &str, face: &CardFace) -> Result<String, QrError> {
    check_face(face)?;
    let modules = qr_modules(text)?;
    let (w, h) = (856.0f32, 540.0f32);
    let n = modules.len() as f32 + 2.0 * QUIET as f32;
    let unit = (h - 60.0) / n;
    let x0 = w - n * unit - 15.0 + QUIET as f32 * unit;
    let y0 = (h - n * unit) / 2.0 + QUIET as f32 * unit;
    let mut svg = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" \
         width=\"85.6mm\" height=\"54mm\" viewBox=\"0 0 {w} {h}\">\n<title>Emergency health card</title>\n\
         <rect x=\"1\" y=\"1\" width=\"{}\" height=\"{}\" rx=\"30\" fill=\"#fff\" stroke=\"#000\" stroke-width=\"2\"/>\n\
         <path fill=\"#000\" d=\"{}\"/>\n",
        w - 2.0,
        h - 2.0,
        svg_path(&modules, x0, y0, unit)
    );
    let mut y = 60.0;
    for (line, size) in card_lines(face) {
        let _ = writeln!(
            svg,
            "<text x=\"30\" y=\"{y}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"{}\"{}>{}</text>",
            22.0 * size,
            if size > 1.0 { " font-weight=\"bold\"" } else { "" },
            xml_escape(&line)
        );
        y += 30.0 * size + 4.0;
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// A PDF string literal: Latin-1 text with `\`, `(` and `)` escaped; other characters become `?`.
fn pdf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('(');
    for c in text.chars() {
        match c {
            '\\' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            '’' => out.push('\''),
            '…' => out.push_str("..."),
            c if (c as u32) >= 0xA0 && (c as u32) <= 0xFF => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            _ => out.push('?'),
        }
    }
    out.push(')');
    out
}

/// The emergency card on an A4 page, card-sized at the top with a border to cut along, as a PDF file.
/// The code is drawn as vector squares; text is in PDF's built-in Helvetica, so nothing is embedded.
pub fn card_pdf(text: &str, face: &CardFace) -> Result<Vec<u8>, QrError> {
    check_face(face)?;
    let modules = qr_modules(text)?;
    // Points: A4 is 595 x 842; the card is 85.6 x 54 mm = 242.6 x 153.1 pt.
    let (card_w, card_h) = (242.6f32, 153.1f32);
    let (left, top) = (56.0f32, 842.0 - 56.0);
    let n = modules.len() as f32 + 2.0 * QUIET as f32;
    let unit = (card_h - 16.0) / n;
    let qx = left + card_w - n * unit - 6.0 + QUIET as f32 * unit;
    let qy_top = top - (card_h - n * unit) / 2.0 - QUIET as f32 * unit;
    let mut content = String::new();
    let _ = writeln!(content, "0.5 w {left} {} {card_w} {card_h} re S", top - card_h);
    for (row, line) in modules.iter().enumerate() {
        for (col, &dark) in line.iter().enumerate() {
            if dark {
                let x = qx + col as f32 * unit;
                let y = qy_top - (row as f32 + 1.0) * unit;
                let _ = writeln!(content, "{x:.3} {y:.3} {unit:.3} {unit:.3} re");
            }
        }
    }
    content.push_str("f\n");
    let mut y = top - 18.0;
    for (line, size) in card_lines(face) {
        let font = if size > 1.0 { "F2" } else { "F1" };
        let pt = 7.0 * size;
        let _ = writeln!(content, "BT /{font} {pt:.1} Tf {} {y:.2} Td {} Tj ET", left + 8.0, pdf_string(&line));
        y -= pt + 3.0;
    }
    let _ = writeln!(
        content,
        "BT /F1 9 Tf {left} {:.2} Td (Cut along the border and keep the card with your ID.) Tj ET",
        top - card_h - 20.0
    );

    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>"
            .to_owned(),
        format!("<< /Length {} >>\nstream\n{content}endstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        let _ = writeln!(tail, "{offset:010} 00000 n ");
    }
    let _ = write!(tail, "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1);
    pdf.extend_from_slice(tail.as_bytes());
    Ok(pdf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qr::decode_image;

    const TEXT: &str = "CU1:E:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGH";

    fn face() -> CardFace {
        CardFace {
            name: "Alice Martin".into(),
            covers: "allergies, medications, conditions and blood type".into(),
            valid_until: "2027-11-21".into(),
        }
    }

    /// `CUSTODIA_PRINTABLE_OUT=DIR` keeps the test card's files there, to look at.
    fn keep(name: &str, bytes: &[u8]) {
        if let Some(dir) = std::env::var_os("CUSTODIA_PRINTABLE_OUT") {
            std::fs::write(std::path::Path::new(&dir).join(name), bytes).unwrap();
        }
    }

    #[test]
    fn labelled_png_still_decodes_and_is_taller_than_the_code() {
        let png = qr_png(TEXT, "Custodia emergency request · St Mary's ED · 7F3A-91C2").unwrap();
        assert_eq!(decode_image(&png).unwrap(), TEXT);
        let img = image::load_from_memory(&png).unwrap();
        assert!(img.height() > img.width());
    }

    #[test]
    fn svg_carries_the_label_as_escaped_text() {
        let svg = qr_svg(TEXT, "A & B <ED>").unwrap();
        assert!(svg.contains("A &amp; B &lt;ED&gt;"));
        assert!(!svg.contains("<ED>"));
        assert!(qr_svg(TEXT, "bad\nlabel").is_err());
    }

    #[test]
    fn card_renders_in_three_formats_and_its_png_decodes() {
        let png = card_png(TEXT, &face()).unwrap();
        keep("card.png", &png);
        assert_eq!(decode_image(&png).unwrap(), TEXT);
        let svg = card_svg(TEXT, &face()).unwrap();
        assert!(svg.contains("Alice Martin") && svg.contains("85.6mm"));
        let pdf = card_pdf(TEXT, &face()).unwrap();
        keep("card.pdf", &pdf);
        keep("card.svg", svg.as_bytes());
        assert!(pdf.starts_with(b"%PDF-1.4") && pdf.ends_with(b"%%EOF\n"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("(Alice Martin) Tj"));
        // The cross-reference table points at each object.
        let xref: usize = text.rsplit("startxref\n").next().unwrap().lines().next().unwrap().parse().unwrap();
        assert!(pdf[xref..].starts_with(b"xref"));
    }

    #[test]
    fn wrapping_keeps_words_and_caps_lines() {
        assert_eq!(wrap("one two three", 7, 3), vec!["one two", "three"]);
        assert_eq!(wrap("abcdefghij", 4, 3), vec!["abcd", "efgh", "ij"]);
        let capped = wrap("a b c d e f g h", 1, 2);
        assert_eq!(capped.len(), 2);
        assert!(capped[1].ends_with('…'));
        assert_eq!(pdf_string("a(b)\\ é"), "(a\\(b\\)\\\\ \\351)");
    }
}

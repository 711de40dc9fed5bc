//! The QR payload codec: what a wallet shows on screen or paper for another device's camera.
//!
//! # Text form (version 1)
//!
//! ```text
//! CU1:C:KRUGS4ZANFZSAYJAMNXW45DBMN2CAY3BOJSA...
//! ^^ ^ ^ RFC 4648 base32, no padding, of: body || checksum
//! |  | kind: one letter, C = contact card
//! |  version
//! Custodia
//! ```
//!
//! The checksum is the first 4 bytes of SHA-256 over the prefix as written (`CU1:C:`, upper case) and the
//! body, so a misread code or a body read as the wrong kind is refused. Every character is in the QR
//! alphanumeric set (`0-9 A-Z space $ % * + - . / :`), which QR stores in 5.5 bits rather than 8, so the code
//! stays small enough to scan from a phone held at arm's length. Reading accepts lower case and surrounding
//! whitespace, because some scanners and clipboards change them.
//!
//! Bodies are plain concatenations; variable-length fields carry a one-byte length prefix.
//!
//! * `C`, [`ContactCard`]: signing key (32) ‖ encryption key (32) ‖ name length (1) ‖ name (UTF-8)
//! * `R`, a [`SignedAccessRequest`]: its body and signature (see [`crate::access_request`])
//! * `E`, an [`EmergencyCard`]: card secret (32) ‖ grant id (16) ‖ ledger URL length (1) ‖ ledger URL
//!
//! Rendering to PNG or SVG and finding a code in a photo are here too, since they only move bytes: the
//! caller reads and writes the files.

use std::borrow::Cow;
use std::io::Cursor;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageError, ImageReader, Limits, Luma};
use qrcode::{EcLevel, QrCode};
use sha2::{Digest, Sha256};

use std::fmt;

use zeroize::Zeroizing;

use crate::access_request::{AccessRequestError, MAX_LEDGER_URL, SignedAccessRequest};
use crate::grant::GrantId;
use crate::keys::{BoxPublicKey, Fingerprint, Identity, MasterSeed, SigningPublicKey};

/// The longest text this module encodes or decodes; well past any payload, well under a QR code's capacity.
pub const MAX_QR_TEXT: usize = 2048;
/// Longest contact name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;

const MAGIC: &str = "CU";
const VERSION: &str = "1";
const CHECKSUM_LEN: usize = 4;
const KIND_CONTACT: char = 'C';
const KIND_REQUEST: char = 'R';
const KIND_CARD: char = 'E';
/// The largest QR version a Custodia code may need at error correction level M: beyond it, phone
/// cameras at arm's length and printers at card size stop being reliable.
pub const MAX_QR_VERSION: i16 = 15;

/// Side of one QR module in rendered PNGs and SVGs, in pixels: sharp on screens, fine for printing.
const MODULE_PX: u32 = 8;
/// Photos larger than this on either side are refused rather than decoded.
const MAX_IMAGE_SIDE: u32 = 4096;
/// The most memory the image decoder may allocate, so a small file that inflates hugely is refused.
const MAX_IMAGE_ALLOC: u64 = 128 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QrError {
    #[error("not a Custodia QR code")]
    NotCustodia,
    #[error("this QR code was made by a newer version of Custodia")]
    UnknownVersion,
    #[error("this QR code holds a kind of Custodia data ({0:?}) this version does not know")]
    UnknownKind(char),
    #[error("the QR code was misread or damaged (its checksum does not match)")]
    BadChecksum,
    #[error("not a valid Custodia QR code: {0}")]
    Malformed(&'static str),
    #[error("contact name {0}")]
    InvalidName(&'static str),
    #[error("too much data for a QR code (at most {MAX_QR_TEXT} characters)")]
    TooLong,
    #[error("the data needs QR version {0}; Custodia codes stay at version 15 or less to scan reliably")]
    VersionTooHigh(i16),
    #[error("could not draw the QR code")]
    Render,
    #[error("{0}")]
    Request(#[from] AccessRequestError),
    #[error("not an image this program can read")]
    ImageUnreadable,
    #[error("no readable QR code in the image")]
    NoQrCode,
    #[error("the image is too large (at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels)")]
    ImageTooLarge,
}

/// Something shown as a QR code. More kinds may be added, so match with a wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QrPayload {
    Contact(ContactCard),
    AccessRequest(SignedAccessRequest),
    EmergencyCard(EmergencyCard),
}

/// What an emergency card carries: the secret of the card's own key, to which the patient issued a standing
/// break-glass grant, the grant's id, and the ledger it is on. Whoever holds the card can present the
/// grant, but a gateway honours it only together with the signature of an enrolled emergency provider.
#[derive(Clone, PartialEq, Eq)]
pub struct EmergencyCard {
    secret: Zeroizing<[u8; 32]>,
    pub grant_id: GrantId,
    pub ledger: String,
}

impl fmt::Debug for EmergencyCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmergencyCard")
            .field("grant_id", &self.grant_id)
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

impl EmergencyCard {
    /// A new card for a grant not yet signed: make the card, then grant to [`Self::identity`].
    pub fn generate(grant_id: GrantId, ledger: String) -> Result<Self, QrError> {
        check_url(&ledger)?;
        Ok(Self { secret: Zeroizing::new(crate::random::array()), grant_id, ledger })
    }

    /// The card's own keys: the grant's grantee, and the key its ledger entry is sealed to.
    pub fn identity(&self) -> Identity {
        Identity::from_seed(&MasterSeed::from_bytes(*self.secret))
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.secret.as_ref());
        out.extend_from_slice(self.grant_id.as_bytes());
        // `check_url` keeps the URL within 200 bytes.
        out.push(u8::try_from(self.ledger.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.ledger.as_bytes());
    }

    fn read_body(body: &[u8]) -> Result<Self, QrError> {
        let mut r = Reader::new(body);
        let secret = Zeroizing::new(*r.array::<32>()?);
        let grant_id = GrantId::from_bytes(*r.array()?);
        let len = r.byte()?;
        let ledger = std::str::from_utf8(r.take(usize::from(len))?)
            .map_err(|_| QrError::Malformed("the ledger URL is not UTF-8"))?
            .to_owned();
        r.finish()?;
        check_url(&ledger)?;
        Ok(Self { secret, grant_id, ledger })
    }
}

fn check_url(url: &str) -> Result<(), QrError> {
    if url.is_empty() || url.len() > MAX_LEDGER_URL || url.chars().any(char::is_control) {
        return Err(QrError::Malformed("the ledger URL is empty, too long or has control characters"));
    }
    Ok(())
}

/// Who someone is, as exchanged face to face: a name to show and the two public keys of their wallet.
///
/// Build one with [`ContactCard::new`], which checks the name. The fields are public for convenience; if a
/// caller sets an invalid name directly, encoding repairs it (see [`QrPayload::encode`]) rather than fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactCard {
    pub name: String,
    pub signing: SigningPublicKey,
    pub boxing: BoxPublicKey,
}

impl ContactCard {
    pub fn new(name: impl Into<String>, signing: SigningPublicKey, boxing: BoxPublicKey) -> Result<Self, QrError> {
        let name = name.into();
        check_name(&name)?;
        Ok(Self { name, signing, boxing })
    }

    /// What both people compare aloud before trusting a scanned card.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.signing, &self.boxing)
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        let name = wire_name(&self.name);
        out.extend_from_slice(self.signing.as_bytes());
        out.extend_from_slice(self.boxing.as_bytes());
        // `wire_name` keeps the name within MAX_NAME_LEN (64) bytes, so its length fits a byte.
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name.as_bytes());
    }

    fn read_body(body: &[u8]) -> Result<Self, QrError> {
        let mut r = Reader::new(body);
        let signing = SigningPublicKey::from_bytes(r.array()?)
            .map_err(|_| QrError::Malformed("the signing key is not a valid Ed25519 key"))?;
        let boxing = BoxPublicKey::from_bytes(*r.array()?);
        let len = r.array::<1>()?[0];
        let name = std::str::from_utf8(r.take(usize::from(len))?)
            .map_err(|_| QrError::InvalidName("is not valid UTF-8"))?
            .to_owned();
        r.finish()?;
        Self::new(name, signing, boxing)
    }
}

/// A name the card can carry: 1 to 64 bytes, not blank, no control characters, and none of the invisible
/// characters that change text direction or break lines, which could make one name display as another.
pub fn check_name(name: &str) -> Result<(), QrError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(QrError::InvalidName("must be 1 to 64 bytes long"));
    }
    if name.trim().is_empty() {
        return Err(QrError::InvalidName("must not be blank"));
    }
    if name.chars().any(forbidden_in_name) {
        return Err(QrError::InvalidName("must not contain control, line-break or text-direction characters"));
    }
    Ok(())
}

fn forbidden_in_name(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The name as it goes on the wire: unchanged if valid, otherwise with forbidden characters replaced, cut to
/// 64 bytes on a character boundary, and never empty, so that encoding cannot fail or produce a code that
/// does not decode.
fn wire_name(name: &str) -> Cow<'_, str> {
    if check_name(name).is_ok() {
        return Cow::Borrowed(name);
    }
    let mut out = String::new();
    for c in name.chars().map(|c| if forbidden_in_name(c) { char::REPLACEMENT_CHARACTER } else { c }) {
        if out.len() + c.len_utf8() > MAX_NAME_LEN {
            break;
        }
        out.push(c);
    }
    if out.trim().is_empty() {
        out = char::REPLACEMENT_CHARACTER.to_string();
    }
    Cow::Owned(out)
}

impl QrPayload {
    fn kind(&self) -> char {
        match self {
            QrPayload::Contact(_) => KIND_CONTACT,
            QrPayload::AccessRequest(_) => KIND_REQUEST,
            QrPayload::EmergencyCard(_) => KIND_CARD,
        }
    }

    /// The text form described in the module docs, in QR alphanumeric characters only.
    pub fn encode(&self) -> String {
        let prefix = format!("{MAGIC}{VERSION}:{}:", self.kind());
        let mut data = Vec::new();
        match self {
            QrPayload::Contact(card) => card.write_body(&mut data),
            QrPayload::AccessRequest(request) => data.extend_from_slice(&request.to_bytes()),
            QrPayload::EmergencyCard(card) => card.write_body(&mut data),
        }
        let sum = checksum(&prefix, &data);
        data.extend_from_slice(&sum);
        let mut out = prefix;
        data_encoding::BASE32_NOPAD.encode_append(&data, &mut out);
        out
    }

    /// Parses the text form. Accepts lower case and surrounding whitespace; refuses more than
    /// [`MAX_QR_TEXT`] characters. The kind letter is read before the checksum is checked, so a code from a
    /// newer wallet is reported as [`QrError::UnknownKind`] rather than as damaged.
    pub fn decode(text: &str) -> Result<Self, QrError> {
        let text = text.trim();
        if text.len() > MAX_QR_TEXT {
            return Err(QrError::TooLong);
        }
        let text = text.to_ascii_uppercase();
        let mut parts = text.splitn(3, ':');
        let head = parts.next().unwrap_or_default();
        let version = head.strip_prefix(MAGIC).ok_or(QrError::NotCustodia)?;
        if version != VERSION {
            let looks_like_version = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
            return Err(if looks_like_version { QrError::UnknownVersion } else { QrError::NotCustodia });
        }
        let (Some(kind), Some(data)) = (parts.next(), parts.next()) else {
            return Err(QrError::Malformed("missing kind or data"));
        };
        let mut kind_chars = kind.chars();
        let (Some(kind), None) = (kind_chars.next(), kind_chars.next()) else {
            return Err(QrError::Malformed("the kind must be one letter"));
        };
        if ![KIND_CONTACT, KIND_REQUEST, KIND_CARD].contains(&kind) {
            return Err(QrError::UnknownKind(kind));
        }
        let mut data =
            data_encoding::BASE32_NOPAD.decode(data.as_bytes()).map_err(|_| QrError::Malformed("not base32"))?;
        let Some(body_len) = data.len().checked_sub(CHECKSUM_LEN) else {
            return Err(QrError::Malformed("too short"));
        };
        let sum = data.split_off(body_len);
        let prefix = format!("{MAGIC}{VERSION}:{kind}:");
        if checksum(&prefix, &data)[..] != sum[..] {
            return Err(QrError::BadChecksum);
        }
        Ok(match kind {
            KIND_CONTACT => QrPayload::Contact(ContactCard::read_body(&data)?),
            KIND_REQUEST => QrPayload::AccessRequest(SignedAccessRequest::from_bytes(&data)?),
            _ => QrPayload::EmergencyCard(EmergencyCard::read_body(&data)?),
        })
    }
}

fn checksum(prefix: &str, body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new().chain_update(prefix.as_bytes()).chain_update(body).finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

/// Reads fixed-size fields off the front of a body, refusing to run past its end.
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, QrError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], QrError> {
        let Some((head, rest)) = self.0.split_at_checked(n) else {
            return Err(QrError::Malformed("too short"));
        };
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], QrError> {
        self.take(N)?.try_into().map_err(|_| QrError::Malformed("too short"))
    }

    pub(crate) fn finish(self) -> Result<(), QrError> {
        if self.0.is_empty() { Ok(()) } else { Err(QrError::Malformed("unexpected trailing data")) }
    }
}

fn qr_code(text: &str) -> Result<QrCode, QrError> {
    qr_code_up_to(text, MAX_QR_VERSION)
}

fn qr_code_up_to(text: &str, max_version: i16) -> Result<QrCode, QrError> {
    if text.len() > MAX_QR_TEXT {
        return Err(QrError::TooLong);
    }
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| match e {
        qrcode::types::QrError::DataTooLong => QrError::TooLong,
        _ => QrError::Render,
    })?;
    match code.version() {
        qrcode::Version::Normal(v) if v <= max_version => Ok(code),
        qrcode::Version::Normal(v) => Err(QrError::VersionTooHigh(v)),
        qrcode::Version::Micro(_) => Err(QrError::Render),
    }
}

/// The code's modules, row by row, `true` for dark, without the quiet zone.
pub(crate) fn qr_modules(text: &str) -> Result<Vec<Vec<bool>>, QrError> {
    let code = qr_code(text)?;
    let width = code.width();
    let colors = code.to_colors();
    Ok(colors.chunks(width).map(|row| row.iter().map(|c| *c == qrcode::Color::Dark).collect()).collect())
}

/// The QR version (1 to 40) `text` needs at error correction level M.
pub fn version_of(text: &str) -> Result<i16, QrError> {
    match qr_code(text) {
        Ok(code) => match code.version() {
            qrcode::Version::Normal(v) => Ok(v),
            qrcode::Version::Micro(_) => Err(QrError::Render),
        },
        Err(QrError::VersionTooHigh(v)) => Ok(v),
        Err(e) => Err(e),
    }
}

/// Draws `text` as a black-on-white QR code (error correction level M, 8 px modules, with the quiet zone)
/// and returns the PNG file's bytes.
pub fn render_png(text: &str) -> Result<Vec<u8>, QrError> {
    png_of(qr_code(text)?)
}

/// The largest version of a document's code (a network profile), shown on a screen or printed a page
/// wide rather than scanned across a room.
pub const MAX_DOCUMENT_QR_VERSION: i16 = 25;

/// [`render_png`] for a document of up to [`MAX_DOCUMENT_QR_VERSION`].
pub fn render_document_png(text: &str) -> Result<Vec<u8>, QrError> {
    png_of(qr_code_up_to(text, MAX_DOCUMENT_QR_VERSION)?)
}

fn png_of(code: QrCode) -> Result<Vec<u8>, QrError> {
    let image = code.render::<Luma<u8>>().quiet_zone(true).module_dimensions(MODULE_PX, MODULE_PX).build();
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(image.as_raw(), image.width(), image.height(), ExtendedColorType::L8)
        .map_err(|_| QrError::Render)?;
    Ok(png)
}

/// Draws `text` as a QR code in an SVG document, with the same settings as [`render_png`].
pub fn render_svg(text: &str) -> Result<String, QrError> {
    Ok(qr_code(text)?
        .render::<qrcode::render::svg::Color<'_>>()
        .quiet_zone(true)
        .module_dimensions(MODULE_PX, MODULE_PX)
        .build())
}

/// Finds a QR code in an image file's bytes (PNG) and returns its text, not yet parsed: pass it to
/// [`QrPayload::decode`]. Images over 4096 pixels a side, or that would need more than 128 MiB to decode,
/// are refused.
pub fn decode_image(bytes: &[u8]) -> Result<String, QrError> {
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| QrError::ImageUnreadable)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        ImageError::Limits(_) => QrError::ImageTooLarge,
        _ => QrError::ImageUnreadable,
    })?;
    let mut prepared = rqrr::PreparedImage::prepare(image.into_luma8());
    prepared.detect_grids().iter().find_map(|grid| grid.decode().ok()).map(|(_, text)| text).ok_or(QrError::NoQrCode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Identity, MasterSeed};

    fn card(seed: [u8; 32], name: &str) -> ContactCard {
        let id = Identity::from_seed(&MasterSeed::from_bytes(seed));
        ContactCard::new(name, id.signing_public(), id.box_public()).unwrap()
    }

    fn contact(payload: QrPayload) -> ContactCard {
        match payload {
            QrPayload::Contact(c) => c,
            #[allow(unreachable_patterns)]
            other => panic!("expected a contact card, got {other:?}"),
        }
    }

    fn is_alphanumeric_mode(text: &str) -> bool {
        text.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase() || b" $%*+-./:".contains(&b))
    }

    /// Wraps any body in a correct frame, to reach the body parser past the checksum.
    fn framed(kind: char, body: &[u8]) -> String {
        let prefix = format!("CU1:{kind}:");
        let mut data = body.to_vec();
        data.extend_from_slice(&checksum(&prefix, body));
        prefix + &data_encoding::BASE32_NOPAD.encode(&data)
    }

    #[test]
    fn contact_card_round_trips_through_text() {
        let c = card([3; 32], "Dr. Ana Souza");
        let text = QrPayload::Contact(c.clone()).encode();
        assert!(text.starts_with("CU1:C:"));
        assert!(is_alphanumeric_mode(&text), "{text}");
        assert_eq!(QrPayload::decode(&text).unwrap(), QrPayload::Contact(c.clone()));
        assert_eq!(QrPayload::decode(&format!("  {}\n", text.to_lowercase())).unwrap(), QrPayload::Contact(c));
    }

    #[test]
    fn contact_card_round_trips_through_png() {
        let c = card([4; 32], "Zoë Ng");
        let text = QrPayload::Contact(c.clone()).encode();
        let png = render_png(&text).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let read = decode_image(&png).unwrap();
        assert_eq!(read, text);
        assert_eq!(QrPayload::decode(&read).unwrap(), QrPayload::Contact(c));
    }

    #[test]
    fn svg_renders() {
        let svg = render_svg("CU1:C:AAAA").unwrap();
        assert!(svg.contains("<svg"));
    }

    #[test]
    fn flipped_character_is_a_bad_checksum() {
        let text = QrPayload::Contact(card([5; 32], "Sam")).encode();
        let mut bytes = text.into_bytes();
        let at = 6 + 20;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(QrPayload::decode(std::str::from_utf8(&bytes).unwrap()), Err(QrError::BadChecksum));
    }

    #[test]
    fn header_errors() {
        let text = QrPayload::Contact(card([5; 32], "Sam")).encode();
        assert_eq!(QrPayload::decode(&text.replacen("CU1:C:", "CU1:Z:", 1)), Err(QrError::UnknownKind('Z')));
        assert_eq!(QrPayload::decode(&text.replacen("CU1:C:", "CU2:C:", 1)), Err(QrError::UnknownVersion));
        assert!(matches!(QrPayload::decode(&text.replacen("CU1:C:", "CU1:CC:", 1)), Err(QrError::Malformed(_))));
        assert_eq!(QrPayload::decode("https://example.org/"), Err(QrError::NotCustodia));
        assert_eq!(QrPayload::decode("CUSTODIA"), Err(QrError::NotCustodia));
        assert_eq!(QrPayload::decode(""), Err(QrError::NotCustodia));
        assert!(matches!(QrPayload::decode("CU1"), Err(QrError::Malformed(_))));
        assert!(matches!(QrPayload::decode("CU1:C:"), Err(QrError::Malformed("too short"))));
        assert!(matches!(QrPayload::decode("CU1:C:AB!"), Err(QrError::Malformed("not base32"))));
        assert_eq!(QrPayload::decode(&"A".repeat(MAX_QR_TEXT + 1)), Err(QrError::TooLong));
    }

    #[test]
    fn bodies_are_checked_past_the_checksum() {
        let c = card([6; 32], "Kim");
        let mut body = Vec::new();
        c.write_body(&mut body);
        assert_eq!(QrPayload::decode(&framed('C', &body)).unwrap(), QrPayload::Contact(c));
        assert!(matches!(QrPayload::decode(&framed('C', &body[..body.len() - 1])), Err(QrError::Malformed(_))));
        let mut long = body.clone();
        long.push(0);
        assert!(matches!(QrPayload::decode(&framed('C', &long)), Err(QrError::Malformed(_))));
        let mut small_order = body.clone();
        small_order[..32].copy_from_slice(&[0; 32]);
        small_order[0] = 1;
        assert!(matches!(QrPayload::decode(&framed('C', &small_order)), Err(QrError::Malformed(_))));
        let mut control = body;
        let last = control.len() - 1;
        control[last] = b'\n';
        assert!(matches!(QrPayload::decode(&framed('C', &control)), Err(QrError::InvalidName(_))));
    }

    #[test]
    fn names_are_checked() {
        let id = Identity::from_seed(&MasterSeed::from_bytes([7; 32]));
        let make = |name: &str| ContactCard::new(name, id.signing_public(), id.box_public());
        assert!(make("A").is_ok());
        assert!(make(&"é".repeat(32)).is_ok());
        for bad in ["", "   ", "a\nb", "tab\there", "\u{202E}evil", "line\u{2028}break", &"x".repeat(65)] {
            assert!(matches!(make(bad), Err(QrError::InvalidName(_))), "{bad:?} should be refused");
        }
    }

    #[test]
    fn invalid_names_set_directly_still_encode_to_something_decodable() {
        for name in ["", " ", "a\u{0}b", &"ü".repeat(40)] {
            let mut c = card([8; 32], "ok");
            c.name = name.to_owned();
            let back = contact(QrPayload::decode(&QrPayload::Contact(c.clone()).encode()).unwrap());
            assert!(check_name(&back.name).is_ok());
            assert_eq!(back.signing, c.signing);
        }
    }

    #[test]
    fn garbage_is_not_an_image() {
        assert_eq!(decode_image(b"definitely not a picture"), Err(QrError::ImageUnreadable));
        assert_eq!(decode_image(b""), Err(QrError::ImageUnreadable));
        let mut png = render_png("CU1:C:AAAA").unwrap();
        png.truncate(png.len() / 2);
        assert_eq!(decode_image(&png), Err(QrError::ImageUnreadable));
    }

    fn png_of(width: u32, height: u32, grey: u8) -> Vec<u8> {
        let pixels = vec![grey; (width * height) as usize];
        let mut png = Vec::new();
        PngEncoder::new(&mut png).write_image(&pixels, width, height, ExtendedColorType::L8).unwrap();
        png
    }

    #[test]
    fn blank_image_has_no_code() {
        assert_eq!(decode_image(&png_of(200, 200, 255)), Err(QrError::NoQrCode));
    }

    #[test]
    fn oversized_image_is_refused() {
        assert_eq!(decode_image(&png_of(MAX_IMAGE_SIDE + 1, 1, 255)), Err(QrError::ImageTooLarge));
    }

    #[test]
    fn too_much_text_is_refused_before_rendering() {
        assert_eq!(render_png(&"A".repeat(MAX_QR_TEXT + 1)), Err(QrError::TooLong));
        assert_eq!(render_svg(&"A".repeat(MAX_QR_TEXT + 1)), Err(QrError::TooLong));
        assert!(matches!(render_svg(&"a".repeat(MAX_QR_TEXT)), Err(QrError::VersionTooHigh(v)) if v > 15));
    }

    fn signed_request(scopes: &[&str], ledger: &str) -> SignedAccessRequest {
        let er = Identity::from_seed(&MasterSeed::generate());
        let now = crate::time::Timestamp::from_unix(1_800_000_000).unwrap();
        let scopes = scopes.iter().map(|s| s.parse().unwrap()).collect();
        crate::access_request::AccessRequest::new(
            &er,
            scopes,
            crate::purpose::PurposeOfUse::EMERGENCY_TREATMENT,
            86_400,
            ledger.into(),
            now,
        )
        .sign(&er)
        .unwrap()
    }

    #[test]
    fn access_requests_and_emergency_cards_round_trip_within_version_15() {
        // A generous request: every common scope a category uses, two spelled out, a long ledger address.
        let ledger = "https://ledger.custodia.example-health-network.org:7420/custodia";
        let mut scopes: Vec<&str> = crate::access_request::COMMON_SCOPES.to_vec();
        scopes.push("patient/Observation.rs?category=social-history");
        scopes.push("patient/CarePlan.rs");
        let request = QrPayload::AccessRequest(signed_request(&scopes, ledger));
        let text = request.encode();
        assert!(is_alphanumeric_mode(&text));
        assert_eq!(QrPayload::decode(&text).unwrap(), request);
        let version = version_of(&text).unwrap();
        assert!(version <= MAX_QR_VERSION, "a full request needs version {version}");

        let card = EmergencyCard::generate(GrantId::generate(), ledger.into()).unwrap();
        let text = QrPayload::EmergencyCard(card.clone()).encode();
        match QrPayload::decode(&text).unwrap() {
            QrPayload::EmergencyCard(read) => {
                assert_eq!(read, card);
                assert_eq!(read.identity().signing_public(), card.identity().signing_public());
            }
            other => panic!("expected a card, got {other:?}"),
        }
        assert!(!format!("{card:?}").contains(&data_encoding::HEXLOWER.encode(card.secret.as_ref())));
        assert!(version_of(&text).unwrap() <= 8);
        for text in [text, QrPayload::AccessRequest(signed_request(&["patient/Condition.rs"], ledger)).encode()] {
            assert_eq!(decode_image(&render_png(&text).unwrap()).unwrap(), text);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_contact_card_round_trips(
            seed in proptest::prelude::any::<[u8; 32]>(),
            name in "[\\p{L}\\p{N}][\\p{L}\\p{N} .,'-]{0,15}",
        ) {
            let c = card(seed, &name);
            let text = QrPayload::Contact(c.clone()).encode();
            proptest::prop_assert!(is_alphanumeric_mode(&text));
            proptest::prop_assert_eq!(QrPayload::decode(&text).unwrap(), QrPayload::Contact(c));
        }

        #[test]
        fn decode_never_panics(text in "\\PC{0,300}") {
            let _ = QrPayload::decode(&text);
            let _ = QrPayload::decode(&format!("CU1:C:{text}"));
        }

        #[test]
        fn any_framed_body_decodes_or_fails_cleanly(body in proptest::collection::vec(proptest::num::u8::ANY, 0..140)) {
            let _ = QrPayload::decode(&framed('C', &body));
        }
    }
}

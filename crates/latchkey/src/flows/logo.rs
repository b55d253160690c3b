//! The consent logo (SPEC 2.6): a developer uploads a PNG or JPEG of at most 1 MB; Latchkey decodes it, bounds it,
//! shrinks it and re-encodes it as a PNG of its own (no metadata survives), stores those bytes and serves them
//! from its own origin at `/logos/<client_id>/<version>`, so that no page loads an image from a developer's host.
//! The console and the CLI both go through [`reencode`].

use crate::app::AppState;
use crate::store::Logo;
use image::{ImageFormat, ImageReader, Limits};
use latchkey_core::ids;
use sha2::{Digest as _, Sha256};
use std::io::Cursor;

/// The largest upload accepted.
pub const MAX_UPLOAD_BYTES: usize = 1024 * 1024;
/// The largest width and height an upload may declare; checked from its header before any pixel is decoded.
pub const MAX_SOURCE_SIDE: u32 = 4096;
/// The longer side of the logo Latchkey serves, at most (smaller images are kept as they are).
pub const MAX_SIDE: u32 = 256;

/// Why an upload is refused; each reads as a sentence for the developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoError {
    #[error("Choose an image file to upload.")]
    Empty,
    #[error("The logo is larger than 1 MB. Upload a smaller PNG or JPEG.")]
    TooLarge,
    #[error("The logo must be a PNG or JPEG image.")]
    NotPngOrJpeg,
    #[error("The logo is {width}x{height} pixels; it may be at most 4096x4096.")]
    TooManyPixels { width: u32, height: u32 },
    #[error("The file could not be read as a PNG or JPEG image. It may be damaged or incomplete.")]
    Undecodable,
}

/// PNG or JPEG, by their signatures (the file's name and declared type are not trusted).
fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(ImageFormat::Jpeg)
    } else {
        None
    }
}

/// The upload as the PNG Latchkey serves: at most [`MAX_SIDE`] on its longer side, aspect kept, 8-bit RGBA.
/// CPU-bound: call it off the async runtime (see [`reencode_blocking`]).
pub fn reencode(bytes: &[u8]) -> Result<Logo, LogoError> {
    if bytes.is_empty() {
        return Err(LogoError::Empty);
    }
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(LogoError::TooLarge);
    }
    let format = sniff(bytes).ok_or(LogoError::NotPngOrJpeg)?;
    // The header's dimensions first: a small file may declare a huge image (a decompression bomb).
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|_| LogoError::Undecodable)?;
    if width > MAX_SOURCE_SIDE || height > MAX_SOURCE_SIDE {
        return Err(LogoError::TooManyPixels { width, height });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_SIDE);
    limits.max_image_height = Some(MAX_SOURCE_SIDE);
    // 4096 x 4096 at 16-bit RGBA, the most any accepted header allows, and the decoder's own working memory.
    limits.max_alloc = Some(160 * 1024 * 1024);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let image = reader.decode().map_err(|_| LogoError::Undecodable)?;
    let image = if image.width() > MAX_SIDE || image.height() > MAX_SIDE {
        image.thumbnail(MAX_SIDE, MAX_SIDE)
    } else {
        image
    };
    let rgba = image::DynamicImage::ImageRgba8(image.into_rgba8());
    let mut png = Vec::new();
    rgba.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|_| LogoError::Undecodable)?;
    let version = data_encoding::HEXLOWER.encode(&Sha256::digest(&png)[..8]);
    Ok(Logo { png, version })
}

/// [`reencode`] on a blocking thread; a decoder that panics on hostile input counts as undecodable.
pub async fn reencode_blocking(bytes: Vec<u8>) -> Result<Logo, LogoError> {
    tokio::task::spawn_blocking(move || reencode(&bytes))
        .await
        .unwrap_or(Err(LogoError::Undecodable))
}

/// Where pages load `client`'s logo, if it has one.
pub fn src(client: &crate::store::Client) -> Option<String> {
    client
        .logo
        .as_deref()
        .map(|version| path(&client.policy.client_id, version))
}

/// Where pages load the logo of version `version` of app `client_id`.
pub fn path(client_id: &str, version: &str) -> String {
    format!("/logos/{client_id}/{version}")
}

/// `GET /logos/{client_id}/{version}`: the stored PNG of that version; `None` when the app has no logo or
/// another version (a new upload has a new version, so what is served may be cached for good).
pub async fn serve(
    state: &AppState,
    client_id: &str,
    version: &str,
) -> Result<Option<Vec<u8>>, crate::flows::error::Failure> {
    if !ids::is_client_id(client_id) {
        return Ok(None);
    }
    Ok(state
        .store
        .find_client_logo(client_id)
        .await?
        .filter(|logo| logo.version == version)
        .map(|logo| logo.png))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 30]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_large_image_shrinks_to_the_maximum_keeping_its_aspect() {
        let logo = reencode(&png(1000, 500)).unwrap();
        let back = image::load_from_memory_with_format(&logo.png, ImageFormat::Png).unwrap();
        assert_eq!((back.width(), back.height()), (256, 128));
        assert_eq!(logo.version.len(), 16);
    }

    #[test]
    fn a_small_image_keeps_its_size() {
        let logo = reencode(&png(40, 30)).unwrap();
        let back = image::load_from_memory(&logo.png).unwrap();
        assert_eq!((back.width(), back.height()), (40, 30));
    }

    #[test]
    fn other_formats_and_broken_files_are_refused() {
        assert_eq!(reencode(b"GIF89a...."), Err(LogoError::NotPngOrJpeg));
        assert_eq!(reencode(b""), Err(LogoError::Empty));
        let whole = png(64, 64);
        assert_eq!(
            reencode(&whole[..whole.len() / 2]),
            Err(LogoError::Undecodable)
        );
        assert_eq!(
            reencode(&vec![0x89; MAX_UPLOAD_BYTES + 1]),
            Err(LogoError::TooLarge)
        );
    }
}

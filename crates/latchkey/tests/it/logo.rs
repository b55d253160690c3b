//! The consent logo (SPEC 2.6; review L6): a developer uploads a PNG or JPEG through the console's multipart form,
//! Latchkey re-encodes it and serves it from its own origin, and that is the only image the consent page and
//! "Apps you've allowed" load (the CSP allows no other origin). Refused files get a 400 page saying why; only the
//! app's owner can change its logo.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::developer::{create_app, developer, text_of};
use crate::support::*;
use image::ImageFormat;
use oauth2::{CsrfToken, PkceCodeChallenge};
use scraper::{Html, Selector};
use std::io::Cursor;
use std::sync::Arc;

const DEV: &str = "dev@example.com";
const OTHER_DEV: &str = "other-dev@example.com";
const CUSTOMER: &str = "ada@example.com";

// ---------------------------------------------------------------------------------------------------------------
// Images made here, with the same crate

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(width, height, image::Rgba([10, 120, 200, 255]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb([200, 60, 20]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

/// CRC-32 (ISO-HDLC), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small, valid PNG whose header claims `width` x `height` (a decompression bomb's shape).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(8, 8);
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height; the chunk's CRC covers type and data.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

// ---------------------------------------------------------------------------------------------------------------
// The vocabulary of this file

/// A file as a browser sends it: (name, type, bytes).
type File<'a> = (&'a str, &'a str, Vec<u8>);

/// The app's console page: (url, html).
async fn console_page(b: &Browser, client_id: &str) -> (String, String) {
    let (status, url, html) = b.open(&format!("/developer/apps/{client_id}")).await.page();
    assert_eq!(status, 200, "{html}");
    (url, html)
}

/// Uploads `file` (name, type, bytes) through the app page's logo form.
async fn upload(
    b: &Browser,
    client_id: &str,
    file: (&str, &str, Vec<u8>),
) -> (u16, String, String) {
    let (url, html) = console_page(b, client_id).await;
    b.upload(&url, &html, "/logo", "logo", file).await.page()
}

/// The `src` of the first image matching `selector`.
fn img_src(html: &str, selector: &str) -> Option<String> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse(selector).unwrap();
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr("src").map(str::to_owned))
}

/// Fetches a logo as any browser would: (status, headers, body).
async fn fetch(app: &TestApp, src: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let res = app.api().get(app.url(src)).send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

/// The dimensions of a served logo, which must be a PNG that decodes.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory_with_format(bytes, ImageFormat::Png)
        .expect("the served logo is a PNG that decodes");
    (img.width(), img.height())
}

/// A customer on their own browser, signed in, at `shop`'s consent page: (browser, url, html, CSP header).
async fn at_consent(app: &TestApp, shop: &RegisteredApp) -> (Browser, String, String, String) {
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = app
        .oauth_client(shop)
        .authorize_url(CsrfToken::new_random)
        .add_scope(oauth2::Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let b = app.browser();
    let step = b.open(url.as_str()).await;
    let (status, url, html) = b.sign_in_on(step, CUSTOMER, PASSWORD).await.page();
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("would like to use your Latchkey account"),
        "{html}"
    );
    // The same page again, for its headers.
    let res = b.http.get(&url).send().await.unwrap();
    let csp = res
        .headers()
        .get("content-security-policy")
        .expect("pages send a CSP")
        .to_str()
        .unwrap()
        .to_owned();
    (b, url, html, csp)
}

async fn stored_logo(app: &TestApp, client_id: &str) -> Option<String> {
    app.store()
        .find_client(client_id)
        .await
        .unwrap()
        .expect("the app exists")
        .logo
}

// ---------------------------------------------------------------------------------------------------------------
// What customers see

#[tokio::test]
async fn an_uploaded_logo_is_served_by_latchkey_resized_and_is_the_only_image_customers_load() {
    for (engine, db) in each_db().await {
        let app = spawn_app_on(Arc::new(db)).await;
        app.create_user(CUSTOMER, "Ada", None).await;
        let (dev, _) = developer(&app, DEV).await;
        let shop = create_app(&dev, &[]).await;
        let (_, html) = console_page(&dev, &shop.client_id).await;
        assert!(text_of(&html, "no-logo").is_some(), "{engine}: {html}");

        // A PNG, uploaded as a browser posts the form.
        let (status, url, html) = upload(
            &dev,
            &shop.client_id,
            ("shop.png", "image/png", png(600, 300)),
        )
        .await;
        assert_eq!(status, 200, "{engine}: {html}");
        assert!(url.ends_with("?done=logo"), "{engine}: {url}");
        assert!(html.contains("The logo is saved"), "{engine}: {html}");
        let version = stored_logo(&app, &shop.client_id).await.expect("a logo");
        let src = img_src(&html, "#current-logo").expect("the console shows it");
        assert_eq!(src, format!("/logos/{}/{version}", shop.client_id));

        // The consent page loads it from Latchkey, and its policy allows no other origin for images.
        let (customer, consent_url, consent, csp) = at_consent(&app, &shop).await;
        let shown = img_src(&consent, "img.logo").expect("the consent page shows the logo");
        assert_eq!(shown, src, "{engine}: a same-origin path");
        let img_src_directive = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("img-src"))
            .expect("an img-src directive");
        assert_eq!(img_src_directive, "img-src 'self' data:", "{engine}: {csp}");
        assert!(!csp.contains("https:"), "{engine}: {csp}");

        // What it loads: Latchkey's own PNG, shrunk to 256 px on the longer side, aspect kept, cacheable.
        let (status, headers, body) = fetch(&app, &shown).await;
        assert_eq!(status, 200, "{engine}");
        assert_eq!(headers["content-type"], "image/png");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let cache = headers["cache-control"].to_str().unwrap();
        assert!(
            cache.contains("public") && cache.contains("max-age="),
            "{cache}"
        );
        assert_eq!(png_size(&body), (256, 128), "{engine}");

        // "Apps you've allowed" shows the same one.
        customer
            .consent_on(
                Step::Page {
                    status: 200,
                    url: consent_url,
                    html: consent,
                },
                true,
                &[],
            )
            .await;
        let (_, _, adam) = customer.open("/ap/adam").await.page();
        assert_eq!(
            img_src(&adam, "img.logo").as_deref(),
            Some(src.as_str()),
            "{engine}"
        );

        // A JPEG replaces it: a new address, the old one gone; tall images keep their aspect too.
        let (status, _, html) = upload(
            &dev,
            &shop.client_id,
            ("tall.jpg", "image/jpeg", jpeg(100, 400)),
        )
        .await;
        assert_eq!(status, 200, "{engine}: {html}");
        let jpeg_src = img_src(&html, "#current-logo").unwrap();
        assert_ne!(jpeg_src, src, "{engine}: a new upload has a new version");
        assert_eq!(fetch(&app, &src).await.0, 404, "{engine}");
        let (status, headers, body) = fetch(&app, &jpeg_src).await;
        assert_eq!(status, 200, "{engine}");
        assert_eq!(headers["content-type"], "image/png", "re-encoded as PNG");
        assert_eq!(png_size(&body), (64, 256), "{engine}");
        let (_, _, adam) = customer.open("/ap/adam").await.page();
        assert_eq!(
            img_src(&adam, "img.logo"),
            Some(jpeg_src.clone()),
            "{engine}"
        );

        // Removed: no logo anywhere, and its address answers 404.
        let (url, html) = console_page(&dev, &shop.client_id).await;
        let (status, url, html) = dev
            .submit(&url, &html, "/logo/remove", &[], None, &[])
            .await
            .page();
        assert_eq!(status, 200, "{engine}: {html}");
        assert!(url.ends_with("?done=logo-removed"), "{url}");
        assert!(text_of(&html, "no-logo").is_some(), "{engine}: {html}");
        assert_eq!(stored_logo(&app, &shop.client_id).await, None);
        assert_eq!(fetch(&app, &jpeg_src).await.0, 404, "{engine}");
        let (_, _, adam) = customer.open("/ap/adam").await.page();
        assert_eq!(img_src(&adam, "img.logo"), None, "{engine}: {adam}");

        // Deleting the app deletes its logo.
        let (status, _, _) = upload(
            &dev,
            &shop.client_id,
            ("shop.png", "image/png", png(32, 32)),
        )
        .await;
        assert_eq!(status, 200);
        let (_, url, html) = dev
            .open(&format!("/developer/apps/{}/delete", shop.client_id))
            .await
            .page();
        let (status, _, _) = dev
            .submit(&url, &html, "/delete", &[], None, &[])
            .await
            .page();
        assert_eq!(status, 200, "{engine}");
        assert!(
            app.store()
                .find_client_logo(&shop.client_id)
                .await
                .unwrap()
                .is_none(),
            "{engine}: the logo went with the app"
        );
    }
}

#[tokio::test]
async fn the_device_confirmation_shows_the_logo_from_latchkey() {
    let app = spawn_app().await;
    app.create_user(CUSTOMER, "Ada", None).await;
    let (dev, _) = developer(&app, DEV).await;
    let tv = create_app(&dev, &[("name", "Living Room TV"), ("flow", "device")]).await;
    let (status, _, html) = upload(&dev, &tv.client_id, ("tv.png", "image/png", png(64, 64))).await;
    assert_eq!(status, 200, "{html}");
    let src = img_src(&html, "#current-logo").unwrap();

    let pair: serde_json::Value = app
        .api()
        .post(app.url("/auth/o2/create/codepair"))
        .form(&[
            ("response_type", "device_code"),
            ("client_id", tv.client_id.as_str()),
            ("scope", "profile"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = pair["user_code"].as_str().expect("a user code");
    let customer = app.browser();
    customer.sign_in(CUSTOMER, PASSWORD).await.page();
    let (_, url, html) = customer.open("/code").await.page();
    let (status, _, html) = customer
        .submit(&url, &html, "/code", &[("user_code", code)], None, &[])
        .await
        .page();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Is this your device?"), "{html}");
    assert_eq!(img_src(&html, "img.logo"), Some(src));
}

// ---------------------------------------------------------------------------------------------------------------
// What is refused

#[tokio::test]
async fn files_that_are_not_a_reasonable_png_or_jpeg_are_refused_with_a_400_that_says_why() {
    let app = spawn_app().await;
    let (dev, _) = developer(&app, DEV).await;
    let shop = create_app(&dev, &[]).await;
    let whole = png(64, 64);
    let mut over_1mb = png(8, 8);
    over_1mb.resize(1024 * 1024 + 1, 0);
    let cases: Vec<(&str, File, &str)> = vec![
        (
            "a GIF",
            ("logo.gif", "image/gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec()),
            "must be a PNG or JPEG",
        ),
        (
            "an SVG",
            (
                "logo.svg",
                "image/svg+xml",
                br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><image href="https://tracker.example/p.png"/></svg>"#.to_vec(),
            ),
            "must be a PNG or JPEG",
        ),
        (
            "a text file named .png",
            ("logo.png", "image/png", b"not an image at all".to_vec()),
            "must be a PNG or JPEG",
        ),
        (
            "a truncated PNG",
            ("logo.png", "image/png", whole[..whole.len() / 2].to_vec()),
            "could not be read as a PNG or JPEG",
        ),
        (
            "a file over 1 MB",
            ("logo.png", "image/png", over_1mb),
            "larger than 1 MB",
        ),
        (
            "a body far over the upload limit",
            ("logo.png", "image/png", vec![0x89; 3 * 1024 * 1024]),
            "larger than 1 MB",
        ),
        (
            "a PNG whose header claims 50000x50000",
            ("bomb.png", "image/png", png_claiming(50_000, 50_000)),
            "50000x50000 pixels; it may be at most 4096x4096",
        ),
        (
            "no file chosen",
            ("", "application/octet-stream", Vec::new()),
            "Choose an image file",
        ),
    ];
    for (what, file, message) in cases {
        let (status, _, html) = upload(&dev, &shop.client_id, file).await;
        assert_eq!(status, 400, "{what}: {html}");
        let error = text_of(&html, "logo-error")
            .unwrap_or_else(|| panic!("{what}: no error shown:\n{html}"));
        assert!(error.contains(message), "{what}: {error}");
        assert!(
            html.contains(r#"aria-invalid="true""#) && html.contains("logo-hint logo-error"),
            "{what}: the file field points at its error"
        );
        assert_eq!(stored_logo(&app, &shop.client_id).await, None, "{what}");
    }
    // A logo that fits is accepted as is (no enlargement).
    let (status, _, html) = upload(
        &dev,
        &shop.client_id,
        ("small.png", "image/png", png(40, 30)),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let (_, _, body) = fetch(&app, &img_src(&html, "#current-logo").unwrap()).await;
    assert_eq!(png_size(&body), (40, 30));
}

#[tokio::test]
async fn only_the_owner_can_change_an_apps_logo_and_only_with_the_forms_token() {
    let app = spawn_app().await;
    let (dev, _) = developer(&app, DEV).await;
    let shop = create_app(&dev, &[]).await;
    let (status, _, html) = upload(
        &dev,
        &shop.client_id,
        ("shop.png", "image/png", png(50, 50)),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let version = stored_logo(&app, &shop.client_id).await.unwrap();

    // Another developer, with their own valid token, posting the same forms at the first developer's app.
    let (other, _) = developer(&app, OTHER_DEV).await;
    let theirs = create_app(&other, &[("name", "Other Shop")]).await;
    let (status, _, _) = upload(
        &other,
        &theirs.client_id,
        ("o.png", "image/png", png(10, 10)),
    )
    .await;
    assert_eq!(
        status, 200,
        "their own app's logo (so the page has the remove form)"
    );
    let (url, html) = console_page(&other, &theirs.client_id).await;
    let aimed = html.replace(&theirs.client_id, &shop.client_id);
    let res = other
        .upload_answer(
            &url,
            &aimed,
            "/logo",
            "logo",
            ("x.png", "image/png", png(20, 20)),
        )
        .await;
    assert_eq!(res.status().as_u16(), 404);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Security profile not found"));
    let res = other
        .submit_answer(&url, &aimed, "/logo/remove", &[], None, &[])
        .await;
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(
        stored_logo(&app, &shop.client_id).await.as_deref(),
        Some(version.as_str())
    );

    // The owner, with a token that is not this browser's.
    let (url, html) = console_page(&dev, &shop.client_id).await;
    let forged = html.replace(&crate::developer::csrf_in(&html), "forged-token");
    let res = dev
        .upload_answer(
            &url,
            &forged,
            "/logo",
            "logo",
            ("x.png", "image/png", png(20, 20)),
        )
        .await;
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.text().await.unwrap().contains("This form has expired"));
    assert_eq!(
        stored_logo(&app, &shop.client_id).await.as_deref(),
        Some(version.as_str())
    );

    // Logo addresses that are not an app's current logo.
    for path in [
        format!("/logos/{}/0000000000000000", shop.client_id),
        format!("/logos/{}/{version}", theirs.client_id),
        format!("/logos/not-a-client/{version}"),
    ] {
        assert_eq!(fetch(&app, &path).await.0, 404, "{path}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The operator's CLI

/// `latchkey <args>` in `dir` with no configuration (the data directory is `dir`): (success, stdout, stderr).
fn latchkey(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.current_dir(dir).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LATCHKEY_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_cli_sets_and_removes_logos_through_the_same_re_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("shop.png"), png(512, 512)).unwrap();
    std::fs::write(d.join("shop.jpg"), jpeg(30, 20)).unwrap();
    std::fs::write(d.join("shop.gif"), b"GIF89a not really").unwrap();
    let add = |logo: &str| {
        latchkey(
            d,
            &[
                "client",
                "add",
                "--name",
                "Shop",
                "--privacy-url",
                "https://shop.example/privacy",
                "--redirect-uri",
                "https://shop.example/cb",
                "--logo",
                logo,
                "--json",
            ],
        )
    };
    // A refused file: nothing is made.
    let (ok, _, stderr) = add("shop.gif");
    assert!(!ok);
    assert!(stderr.contains("must be a PNG or JPEG"), "{stderr}");
    let (_, list, _) = latchkey(d, &["client", "list", "--json"]);
    assert_eq!(list.trim(), "[]", "{list}");

    let (ok, stdout, stderr) = add("shop.png");
    assert!(ok, "{stderr}");
    let app: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let client_id = app["client_id"].as_str().unwrap().to_owned();
    let first = app["logo"].as_str().expect("a logo version").to_owned();
    assert_eq!(
        app["verified"], true,
        "the operator's own app stays verified"
    );

    let (ok, stdout, stderr) = latchkey(d, &["client", "logo", &client_id, "shop.jpg", "--json"]);
    assert!(ok, "{stderr}");
    let set: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let second = set["logo"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(set["logo_path"], format!("/logos/{client_id}/{second}"));

    let (ok, _, stderr) = latchkey(d, &["client", "logo", &client_id, "shop.gif"]);
    assert!(!ok && stderr.contains("must be a PNG or JPEG"), "{stderr}");
    let (_, shown, _) = latchkey(d, &["client", "show", &client_id, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        shown["logo"],
        second.as_str(),
        "a refused file changes nothing"
    );

    let (ok, _, stderr) = latchkey(d, &["client", "logo", &client_id, "--remove"]);
    assert!(ok, "{stderr}");
    let (_, shown, _) = latchkey(d, &["client", "show", &client_id, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["logo"], serde_json::Value::Null);
}

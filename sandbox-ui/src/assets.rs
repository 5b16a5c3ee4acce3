//! Static files compiled into the binary: the instance may be unreachable from the
//! internet as the browser sees it, so nothing comes from a CDN.

use std::sync::OnceLock;

use actix_web::http::header::{
    AcceptEncoding, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, Encoding, Header,
    IF_NONE_MATCH, VARY,
};
use actix_web::{HttpRequest, HttpResponse, get, web};

/// An embedded file: its name under `/static/`, type, bytes and, for text, a gzip copy
/// made at build time (`build.rs`).
struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
    gzip: Option<&'static [u8]>,
}

macro_rules! out_file {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name))
    };
}

const FILES: &[Asset] = &[
    Asset {
        name: "app.css",
        mime: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/app.css"),
        gzip: Some(out_file!("app.css.gz")),
    },
    Asset {
        name: "app.js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/app.js"),
        gzip: Some(out_file!("app.js.gz")),
    },
    // Bundled from `web/` by build.rs.
    Asset {
        name: "markdown.js",
        mime: "text/javascript; charset=utf-8",
        bytes: out_file!("markdown.js"),
        gzip: Some(out_file!("markdown.js.gz")),
    },
    Asset {
        name: "icon.svg",
        mime: "image/svg+xml",
        bytes: include_bytes!("../assets/icon.svg"),
        gzip: None,
    },
];

/// A short hash of every asset: page links carry it, so a new build is fetched at once
/// and an old one can be cached for good.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // FNV-1a: stable across builds and platforms, unlike the std hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for asset in FILES {
            for b in asset.bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{:012x}", h & 0xffff_ffff_ffff)
    })
}

/// `GET /static/{name}`: served without a session.
#[get("/static/{name}")]
pub async fn serve(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(asset) = FILES.iter().find(|a| a.name == name.as_str()) else {
        return HttpResponse::NotFound().body("no such file");
    };
    let etag = format!("\"{}\"", version());
    if req
        .headers()
        .get(IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return HttpResponse::NotModified().finish();
    }
    let mut response = HttpResponse::Ok();
    response
        .insert_header((CONTENT_TYPE, asset.mime))
        .insert_header((ETAG, etag))
        .insert_header((VARY, "Accept-Encoding"))
        .insert_header((CACHE_CONTROL, "public, max-age=3600"));
    match asset.gzip {
        Some(packed) if accepts_gzip(&req) => response
            .insert_header((CONTENT_ENCODING, "gzip"))
            .body(packed),
        _ => response.body(asset.bytes),
    }
}

/// Whether the client takes gzip (every browser does; `gzip;q=0` refuses it).
fn accepts_gzip(req: &HttpRequest) -> bool {
    let gzip = Encoding::gzip();
    AcceptEncoding::parse(req)
        .ok()
        .and_then(|accept| accept.negotiate([&gzip].into_iter()))
        .is_some_and(|chosen| chosen == gzip)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use actix_web::{App, test};

    use super::*;

    async fn get(accept: Option<&str>) -> (Option<String>, Vec<u8>) {
        let app = test::init_service(App::new().service(serve)).await;
        let mut req = test::TestRequest::get().uri("/static/markdown.js");
        if let Some(a) = accept {
            req = req.insert_header((actix_web::http::header::ACCEPT_ENCODING, a));
        }
        let resp = test::call_service(&app, req.to_request()).await;
        assert!(resp.status().is_success());
        let encoding = resp
            .headers()
            .get(CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        (encoding, test::read_body(resp).await.to_vec())
    }

    #[actix_web::test]
    async fn the_bundle_is_sent_gzipped_to_whoever_takes_gzip() {
        let (plain_enc, plain) = get(None).await;
        assert_eq!(plain_enc, None);
        assert!(
            plain.len() > 100_000,
            "markdown-it, DOMPurify, highlight.js, KaTeX"
        );
        let (enc, packed) = get(Some("br, gzip;q=0.8, deflate")).await;
        assert_eq!(enc.as_deref(), Some("gzip"));
        assert!(packed.len() < plain.len() / 2);
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .expect("valid gzip");
        assert_eq!(unpacked, plain);
        assert_eq!(get(Some("gzip;q=0")).await.0, None);
    }
}

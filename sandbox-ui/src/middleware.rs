//! One log line per request with its id, and the security headers of every response.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    CONTENT_SECURITY_POLICY, HeaderName, HeaderValue, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use actix_web::middleware::Next;
use sandbox_core::request_log::{REQUEST_ID_HEADER, RequestLog};

/// Scripts and styles only from this site, no inline script, no framing: even if
/// model output slipped into the page as HTML, it could not run.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Request id, log line, security headers.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let log = RequestLog::start("ui", req.method().as_str(), req.path());
    let mut res = next.call(req).await?;
    let status = res.status().as_u16();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(log.id()) {
        h.insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    log.finish(status);
    Ok(res)
}

//! Request ids, one log line per request, request metrics, and authentication.

use actix_web::ResponseError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use sandbox_core::request_log::{REQUEST_ID_HEADER, RequestLog};

use crate::error::ApiError;
use crate::state::{AppState, RequestId};

/// Gives the request an id, logs one line when it is answered, counts it.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let log = RequestLog::start("req", req.method().as_str(), req.path());
    req.extensions_mut().insert(RequestId(log.id().to_owned()));
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut res = next.call(req).await?;
    let status = res.status().as_u16();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    if let Ok(v) = HeaderValue::from_str(log.id()) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    if let Some(state) = state {
        state.metrics.request(&route, status);
    }
    log.finish(status);
    Ok(res)
}

/// Requires a valid `Authorization: Bearer` key when keys are configured.
pub async fn authenticate<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let accepted = req.app_data::<web::Data<AppState>>().is_some_and(|s| {
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        s.keys.accepts(header)
    });
    if !accepted {
        let message = if req.headers().contains_key(AUTHORIZATION) {
            "Incorrect API key provided."
        } else {
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
        };
        let resp = ApiError::unauthorized(message).error_response();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

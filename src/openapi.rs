//! `GET /`: the OpenAPI 3 document of the exposed functions (being written).

use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::error::{Error, RequestError};

/// Serve the OpenAPI document for the caller's role.
pub async fn root(_req: HttpRequest, _state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    Err(RequestError::InvalidPath.into())
}

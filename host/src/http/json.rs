//! [`JsonBody`]: the JSON request body of host-native routes, refused in the platform's error
//! shape: `413` past the host's body limit, `415` unless sent as `application/json`, else `400`.

use axum::Json;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};

/// A request body decoded from JSON under the host's `max_body_bytes`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::json_rejection(rejection, state.limits.max_body_bytes)),
        }
    }
}

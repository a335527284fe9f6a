//! Bearer tokens: `cht_` + 32 random bytes (base64url). Only sha256(token) is stored, so a
//! copy of the database does not hand out access.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

const PREFIX: &str = "cht_";
/// Longer Authorization values are not ours; refusing them early bounds the hashing work.
const MAX_TOKEN_LEN: usize = 128;

/// A new random token.
pub(crate) fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub(crate) fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The owner the request's bearer token belongs to. Extracting it answers 401 otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner(pub i64);

fn unauthorized(message: &str, challenge: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    )
}

impl FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized("missing bearer token", "Bearer"));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN);
        let Some(token) = token else {
            return Err(unauthorized(
                "malformed Authorization header, expected 'Bearer <token>'",
                "Bearer error=\"invalid_request\"",
            ));
        };
        let hash = hash(token);
        let owner = state.db(move |db| db.owner_for_token(&hash)).await?;
        owner
            .map(Owner)
            .ok_or_else(|| unauthorized("invalid token", "Bearer error=\"invalid_token\""))
    }
}

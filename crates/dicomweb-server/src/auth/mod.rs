//! Authentication and authorisation: OAuth 2.0 bearer tokens (JWTs) from an OpenID Connect issuer, roles mapped
//! to permissions, and the per-route check.
//!
//! Every route declares an [`Access`] in the route table (`routes::ROUTES`); [`authorize`] runs in front of the
//! route's handler and either lets the request through or answers 401/403 through [`crate::error::ApiError`].
//! Keys come from the issuer's JWKS, cached by [`oidc::OidcVerifier`]; a request never fetches them unless its
//! token names a key the cache does not know (key rotation).

pub mod oidc;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

pub use oidc::OidcVerifier;

/// What a route lets a caller do; roles grant these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// WADO-RS, QIDO-RS, change feed.
    Read,
    /// STOW-RS.
    Write,
    /// Delete studies, series and instances.
    Delete,
    /// Operations on the server itself (reindex and future management APIs).
    Admin,
}

impl Permission {
    pub const ALL: [Permission; 4] = [
        Permission::Read,
        Permission::Write,
        Permission::Delete,
        Permission::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Delete => "delete",
            Permission::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Permissions(u8);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);
    pub const ALL: Permissions = Permissions(0b1111);

    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn union(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions(iter.into_iter().fold(0, |bits, p| bits | p.bit()))
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token (the health check only).
    Open,
    /// A caller whose roles grant this permission.
    Requires(Permission),
}

impl Access {
    /// The name printed by `dicomweb routes`.
    pub fn name(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Requires(p) => p.name(),
        }
    }
}

/// Role names to permissions: the built-in roles, then the configuration's (which may redefine a built-in).
#[derive(Debug, Clone, PartialEq)]
pub struct RoleMap(BTreeMap<String, Permissions>);

impl RoleMap {
    /// `DicomDataReader` reads, `DicomDataWriter` reads and stores, `DicomDataOwner` may do everything.
    pub fn builtin() -> RoleMap {
        use Permission::*;
        let mut roles = BTreeMap::new();
        roles.insert("DicomDataReader".to_owned(), [Read].into_iter().collect());
        roles.insert(
            "DicomDataWriter".to_owned(),
            [Read, Write].into_iter().collect(),
        );
        roles.insert("DicomDataOwner".to_owned(), Permissions::ALL);
        RoleMap(roles)
    }

    /// The built-in roles with `configured` added on top.
    pub fn with(configured: &BTreeMap<String, Vec<Permission>>) -> RoleMap {
        let mut map = RoleMap::builtin();
        for (role, permissions) in configured {
            map.0
                .insert(role.clone(), permissions.iter().copied().collect());
        }
        map
    }

    /// What the given roles together allow; unknown roles grant nothing.
    pub fn permissions_of<'a>(&self, roles: impl IntoIterator<Item = &'a str>) -> Permissions {
        roles
            .into_iter()
            .filter_map(|role| self.0.get(role))
            .fold(Permissions::NONE, |all, p| all.union(*p))
    }
}

/// The claim at `path` in a token's claims: the top-level claim of that exact name if there is one (namespaced
/// claims such as `https://example.com/roles` contain dots), else the dotted path through nested objects
/// (`realm_access.roles`, Keycloak's realm roles).
pub fn claim_at<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    path.split('.')
        .try_fold(claims, |value, segment| value.get(segment))
}

/// Role names in a claim value: an array of strings, or one string of space-separated names (as `scope` is).
pub fn role_names(value: &Value) -> Vec<&str> {
    match value {
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        Value::String(text) => text.split_whitespace().collect(),
        _ => Vec::new(),
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's `sub`, for logs; absent for anonymous access.
    pub subject: Option<String>,
    pub permissions: Permissions,
}

/// Why a request is not let through. Each becomes a status in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No bearer token was sent (401 without an error code, as RFC 6750 asks).
    #[error("authentication required: send Authorization: Bearer <token>")]
    MissingToken,
    /// A token was sent and is not acceptable (401, `error="invalid_token"`).
    #[error("invalid token: {0}")]
    InvalidToken(InvalidToken),
    /// The token is valid but its roles do not grant the permission (403, `error="insufficient_scope"`).
    #[error("the token's roles do not grant the {0} permission")]
    Forbidden(Permission),
    /// The token names a key the cache does not have and the issuer's key set cannot be fetched (503).
    #[error("the identity provider's signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

/// The reason a token is refused; the text goes to the client in `error_description` and to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    #[error("not a well-formed JWT")]
    Malformed,
    #[error("signing algorithm {0} is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("the token's header lists critical extensions (crit), and this server supports none")]
    UnsupportedCritical,
    #[error("signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("the token names no signing key (kid), and the issuer publishes several")]
    MissingKeyId,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    #[error("the token's {claim} claim is malformed: it must be {expected}")]
    MalformedClaim {
        claim: String,
        expected: &'static str,
    },
}

/// How requests are authenticated: not at all (every caller may do everything), or by OIDC bearer tokens.
pub enum Authenticator {
    Anonymous,
    Oidc(Arc<OidcVerifier>),
}

impl Authenticator {
    /// The caller of a request, from its `Authorization` header.
    pub async fn authenticate(
        &self,
        authorization: Option<&header::HeaderValue>,
    ) -> Result<Principal, AuthError> {
        match self {
            Authenticator::Anonymous => Ok(Principal {
                subject: None,
                permissions: Permissions::ALL,
            }),
            Authenticator::Oidc(verifier) => {
                let token = bearer_token(authorization)?;
                verifier.verify(token).await
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header. Another scheme counts as no token: the server only
/// speaks Bearer, which the 401's challenge says.
fn bearer_token(authorization: Option<&header::HeaderValue>) -> Result<&str, AuthError> {
    let value = authorization
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::MissingToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::InvalidToken(InvalidToken::Malformed));
    }
    Ok(token)
}

/// Route middleware: authenticates the request and checks `access` before the handler runs.
pub async fn authorize<B: MessageBody + 'static>(
    authenticator: Arc<Authenticator>,
    access: Access,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    // Refusals are answered here as responses, not returned as errors, so that the middleware around the
    // routes (CORS headers, access log) sees them like any other response.
    let refuse = |req: ServiceRequest, error: AuthError| {
        Ok(req
            .error_response(ApiError::Auth(error))
            .map_into_right_body::<B>())
    };
    if let Access::Requires(permission) = access {
        // Which of several credentials counts would be a guess (and a proxy and this server may guess
        // differently); RFC 6750 3.1 answers such a request with 400.
        let authorizations = req.headers().get_all(header::AUTHORIZATION).count();
        if authorizations > 1 {
            let error = ApiError::BadRequest(format!(
                "the request carries {authorizations} Authorization headers; send exactly one"
            ));
            tracing::info!(method = %req.method(), path = req.path(), "request refused: {error}");
            return Ok(req.error_response(error).map_into_right_body());
        }
        let principal = match authenticator
            .authenticate(req.headers().get(header::AUTHORIZATION))
            .await
        {
            Ok(principal) => principal,
            Err(error) => {
                // The reason, never the token.
                tracing::info!(method = %req.method(), path = req.path(), "request refused: {error}");
                return refuse(req, error);
            }
        };
        let subject = principal.subject.as_deref().unwrap_or("-");
        if !principal.permissions.contains(permission) {
            let error = AuthError::Forbidden(permission);
            tracing::info!(method = %req.method(), path = req.path(), subject, "request refused: {error}");
            return refuse(req, error);
        }
        tracing::debug!(subject, permission = %permission, "request authorised");
        req.extensions_mut().insert(principal);
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_reach_nested_claims_and_exact_names_win() {
        let claims = json!({
            "roles": ["DicomDataReader"],
            "realm_access": {"roles": ["DicomDataOwner", "offline_access"]},
            "https://example.com/roles": "DicomDataWriter",
        });
        assert_eq!(
            role_names(claim_at(&claims, "roles").unwrap()),
            ["DicomDataReader"]
        );
        assert_eq!(
            role_names(claim_at(&claims, "realm_access.roles").unwrap()),
            ["DicomDataOwner", "offline_access"]
        );
        assert_eq!(
            role_names(claim_at(&claims, "https://example.com/roles").unwrap()),
            ["DicomDataWriter"]
        );
        assert!(claim_at(&claims, "realm_access.groups").is_none());
        assert!(role_names(&json!(42)).is_empty());
    }

    #[test]
    fn builtin_roles_and_configured_roles() {
        let mut configured = BTreeMap::new();
        configured.insert("Radiologist".to_owned(), vec![Permission::Read]);
        configured.insert("DicomDataWriter".to_owned(), vec![Permission::Write]);
        let map = RoleMap::with(&configured);
        let reader = map.permissions_of(["DicomDataReader"]);
        assert!(reader.contains(Permission::Read) && !reader.contains(Permission::Write));
        assert_eq!(map.permissions_of(["DicomDataOwner"]), Permissions::ALL);
        assert_eq!(
            map.permissions_of(["Radiologist", "nobody"]),
            [Permission::Read].into_iter().collect()
        );
        // A configured role of a built-in name replaces it.
        assert_eq!(
            map.permissions_of(["DicomDataWriter"]),
            [Permission::Write].into_iter().collect()
        );
        assert_eq!(map.permissions_of(["unknown"]), Permissions::NONE);
    }

    #[actix_web::test]
    async fn a_request_with_two_authorization_headers_is_refused() {
        use actix_web::{App, middleware::from_fn, test, web};
        let authenticator = Arc::new(Authenticator::Anonymous);
        let app = test::init_service(
            App::new().route(
                "/read",
                web::get()
                    .to(|| async { "read" })
                    .wrap(from_fn(move |req, next| {
                        authorize(
                            authenticator.clone(),
                            Access::Requires(Permission::Read),
                            req,
                            next,
                        )
                    })),
            ),
        )
        .await;
        let request = test::TestRequest::get()
            .uri("/read")
            .append_header((header::AUTHORIZATION, "Bearer first"))
            .append_header((header::AUTHORIZATION, "Bearer second"))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), actix_web::http::StatusCode::BAD_REQUEST);
        let body = test::read_body(response).await;
        assert!(String::from_utf8_lossy(&body).contains("2 Authorization headers"));
        let one = test::TestRequest::get()
            .uri("/read")
            .append_header((header::AUTHORIZATION, "Bearer first"))
            .to_request();
        assert!(test::call_service(&app, one).await.status().is_success());
    }

    #[test]
    fn only_bearer_tokens_are_read() {
        let value = |s: &'static str| header::HeaderValue::from_static(s);
        assert_eq!(bearer_token(Some(&value("Bearer abc"))).unwrap(), "abc");
        assert_eq!(bearer_token(Some(&value("bearer  abc "))).unwrap(), "abc");
        assert!(matches!(
            bearer_token(Some(&value("Basic dXNlcjpwdw=="))),
            Err(AuthError::MissingToken)
        ));
        assert!(matches!(bearer_token(None), Err(AuthError::MissingToken)));
        assert!(matches!(
            bearer_token(Some(&value("Bearer "))),
            Err(AuthError::InvalidToken(InvalidToken::Malformed))
        ));
    }
}

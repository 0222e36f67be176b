//! Verification of an OpenID Connect issuer's JWTs: discovery, the JWKS key cache and its refreshes, and the
//! checks of a token (signature, algorithm, issuer, audience, validity window with clock skew).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::{AuthError, InvalidToken, Permissions, Principal, RoleMap, claim_at, role_names};

/// The shortest time between two fetches of the key set caused by unknown `kid`s, so that tokens with made-up
/// `kid`s cannot make the server hammer the issuer. A token whose key is missing from a key set fetched less
/// than this long ago is refused without fetching again: the issuer signs only with keys it already publishes.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(1);
/// How long a call to the issuer may take.
const ISSUER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the verifier needs from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    /// The issuer URL; discovery is at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted `aud` values (any one suffices).
    pub audiences: Vec<String>,
    /// Where the roles are in the claims (a name or a dotted path).
    pub roles_claim: String,
    /// Accepted signing algorithms (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// How often the key set is refetched even when no unknown key appears.
    pub jwks_refresh_interval: Duration,
    pub roles: RoleMap,
}

/// Why the issuer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot fetch {url}: {cause}")]
    Fetch { url: String, cause: String },
    #[error("{url} is not an OpenID Connect discovery document: {cause}")]
    BadDiscovery { url: String, cause: String },
    #[error(
        "the discovery document names the issuer \"{found}\", not the configured \"{configured}\"; configure \
         exactly the issuer the identity provider puts in its tokens"
    )]
    IssuerMismatch { configured: String, found: String },
    #[error("{url} is not a JSON Web Key Set: {cause}")]
    BadKeySet { url: String, cause: String },
    #[error("the key set at {url} holds no usable signing key")]
    NoKeys { url: String },
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeySetDocument {
    // Each key separately: one key of a type this server does not know must not hide the others.
    keys: Vec<Value>,
}

#[derive(Clone)]
struct SigningKey {
    key: DecodingKey,
    /// The key's `alg`, when the issuer states it; a token must then use exactly that algorithm.
    algorithm: Option<Algorithm>,
}

struct KeyCache {
    by_kid: HashMap<String, SigningKey>,
    /// Keys without a `kid`; a token without a `kid` is accepted only if the issuer publishes a single key.
    unnamed: Vec<SigningKey>,
    fetched_at: Instant,
    /// Incremented by every fetch, so that waiters on an unknown `kid` see whether someone else fetched.
    generation: u64,
}

/// Verifies the bearer tokens of one issuer.
pub struct OidcVerifier {
    settings: OidcSettings,
    /// The issuer as the discovery document states it, the value `iss` must equal.
    issuer: String,
    jwks_uri: String,
    http: reqwest::Client,
    keys: RwLock<KeyCache>,
    /// Serialises fetches of the key set.
    fetching: tokio::sync::Mutex<()>,
}

impl OidcVerifier {
    /// Reads the issuer's discovery document and key set. Fails when either is unreachable or unusable, so
    /// that a misconfigured issuer stops the server at start rather than refusing every request later.
    pub async fn discover(settings: OidcSettings) -> Result<Arc<OidcVerifier>, DiscoveryError> {
        let http = reqwest::Client::builder()
            .timeout(ISSUER_TIMEOUT)
            .build()
            .map_err(|e| DiscoveryError::Fetch {
                url: settings.issuer.clone(),
                cause: e.to_string(),
            })?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            settings.issuer.trim_end_matches('/')
        );
        let document: DiscoveryDocument = get_json(&http, &url).await.and_then(|value| {
            serde_json::from_value(value).map_err(|e| DiscoveryError::BadDiscovery {
                url: url.clone(),
                cause: e.to_string(),
            })
        })?;
        if document.issuer.trim_end_matches('/') != settings.issuer.trim_end_matches('/') {
            return Err(DiscoveryError::IssuerMismatch {
                configured: settings.issuer.clone(),
                found: document.issuer,
            });
        }
        let (by_kid, unnamed) = fetch_keys(&http, &document.jwks_uri).await?;
        tracing::info!(
            issuer = %document.issuer,
            jwks_uri = %document.jwks_uri,
            keys = by_kid.len() + unnamed.len(),
            "identity provider discovered"
        );
        Ok(Arc::new(OidcVerifier {
            settings,
            issuer: document.issuer,
            jwks_uri: document.jwks_uri,
            http,
            keys: RwLock::new(KeyCache {
                by_kid,
                unnamed,
                fetched_at: Instant::now(),
                generation: 0,
            }),
            fetching: tokio::sync::Mutex::new(()),
        }))
    }

    /// Refetches the key set every `jwks_refresh_interval`, for as long as the verifier lives. A failed fetch
    /// keeps the keys there are.
    pub fn spawn_scheduled_refresh(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let interval = self.settings.jwks_refresh_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(verifier) = weak.upgrade() else {
                    return;
                };
                let _fetching = verifier.fetching.lock().await;
                if let Err(error) = verifier.refetch().await {
                    tracing::warn!(%error, "scheduled refresh of the identity provider's keys failed; keeping the cached keys");
                }
            }
        });
    }

    /// Fetches the key set and replaces the cache. The caller holds `fetching`.
    async fn refetch(&self) -> Result<(), DiscoveryError> {
        let (by_kid, unnamed) = fetch_keys(&self.http, &self.jwks_uri).await?;
        let mut cache = self.keys.write().unwrap_or_else(|e| e.into_inner());
        tracing::info!(
            keys = by_kid.len() + unnamed.len(),
            "identity provider keys refreshed"
        );
        cache.by_kid = by_kid;
        cache.unnamed = unnamed;
        cache.fetched_at = Instant::now();
        cache.generation += 1;
        Ok(())
    }

    /// Looks a key up in the cache: `Ok(None)` when the `kid` is unknown, with the cache generation seen.
    fn cached_key(&self, kid: Option<&str>) -> (Option<SigningKey>, u64) {
        let cache = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = match kid {
            Some(kid) => cache.by_kid.get(kid).cloned(),
            None => match (cache.by_kid.len(), cache.unnamed.as_slice()) {
                (0, [only]) => Some(only.clone()),
                (1, []) => cache.by_kid.values().next().cloned(),
                _ => None,
            },
        };
        (key, cache.generation)
    }

    /// The key a token names; refetches the key set once if the key is unknown (the issuer may have rotated).
    async fn key_for(&self, kid: Option<&str>) -> Result<SigningKey, AuthError> {
        let (key, seen_generation) = self.cached_key(kid);
        if let Some(key) = key {
            return Ok(key);
        }
        if kid.is_none() {
            return Err(AuthError::InvalidToken(InvalidToken::UnknownKey));
        }
        {
            let _fetching = self.fetching.lock().await;
            let (generation, fetched_at) = {
                let cache = self.keys.read().unwrap_or_else(|e| e.into_inner());
                (cache.generation, cache.fetched_at)
            };
            // Someone else fetched while this request waited: look again without fetching.
            if generation == seen_generation {
                if fetched_at.elapsed() < MIN_REFETCH_INTERVAL {
                    return Err(AuthError::InvalidToken(InvalidToken::UnknownKey));
                }
                tracing::info!(
                    "a token names an unknown signing key; refetching the issuer's key set"
                );
                self.refetch()
                    .await
                    .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?;
            }
        }
        self.cached_key(kid)
            .0
            .ok_or(AuthError::InvalidToken(InvalidToken::UnknownKey))
    }

    /// Verifies a token and returns its caller with the permissions its roles grant.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let invalid = AuthError::InvalidToken;
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid(InvalidToken::Malformed))?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(invalid(InvalidToken::AlgorithmNotAllowed(format!(
                "{:?}",
                header.alg
            ))));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        if key.algorithm.is_some_and(|alg| alg != header.alg) {
            return Err(invalid(InvalidToken::BadSignature));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.settings.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|e| invalid(reason_of(e.kind())))?;
        let claims = data.claims;
        let roles = claim_at(&claims, &self.settings.roles_claim)
            .map(role_names)
            .unwrap_or_default();
        let permissions: Permissions = self.settings.roles.permissions_of(roles);
        Ok(Principal {
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            permissions,
        })
    }
}

fn reason_of(kind: &ErrorKind) -> InvalidToken {
    match kind {
        ErrorKind::ExpiredSignature => InvalidToken::Expired,
        ErrorKind::ImmatureSignature => InvalidToken::NotYetValid,
        ErrorKind::InvalidIssuer => InvalidToken::WrongIssuer,
        ErrorKind::InvalidAudience => InvalidToken::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => InvalidToken::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => InvalidToken::MalformedClaim(claim.clone()),
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => InvalidToken::BadSignature,
        _ => InvalidToken::Malformed,
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, DiscoveryError> {
    let fetch_error = |cause: String| DiscoveryError::Fetch {
        url: url.to_owned(),
        cause,
    };
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fetch_error(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fetch_error(format!("HTTP {status}")));
    }
    response
        .json::<Value>()
        .await
        .map_err(|e| fetch_error(format!("the body is not JSON: {e}")))
}

/// reqwest's errors say "error sending request"; the cause (connection refused, certificate) is in the chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

type Keys = (HashMap<String, SigningKey>, Vec<SigningKey>);

async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<Keys, DiscoveryError> {
    let document: KeySetDocument =
        serde_json::from_value(get_json(http, url).await?).map_err(|e| {
            DiscoveryError::BadKeySet {
                url: url.to_owned(),
                cause: e.to_string(),
            }
        })?;
    let mut by_kid = HashMap::new();
    let mut unnamed = Vec::new();
    for value in document.keys {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(e) => {
                tracing::debug!(error = %e, "skipping a key of an unsupported type in the issuer's key set");
                continue;
            }
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let algorithm = jwk
            .common
            .key_algorithm
            .and_then(|alg| alg.to_string().parse::<Algorithm>().ok());
        let key = match DecodingKey::from_jwk(&jwk) {
            Ok(key) => SigningKey { key, algorithm },
            Err(e) => {
                tracing::debug!(error = %e, kid = ?jwk.common.key_id, "skipping an unusable key in the issuer's key set");
                continue;
            }
        };
        match jwk.common.key_id {
            Some(kid) => {
                by_kid.insert(kid, key);
            }
            None => unnamed.push(key),
        }
    }
    if by_kid.is_empty() && unnamed.is_empty() {
        return Err(DiscoveryError::NoKeys {
            url: url.to_owned(),
        });
    }
    Ok((by_kid, unnamed))
}

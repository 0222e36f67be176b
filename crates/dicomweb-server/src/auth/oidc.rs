//! Verification of an OpenID Connect issuer's JWTs: discovery, the JWKS key cache and its refreshes, and the
//! checks of a token (header, signature, algorithm, issuer, audience, validity window with clock skew, and the
//! types of the registered claims).
//!
//! Key cache: the key set is fetched at start, every `jwks_refresh_interval` (at most
//! [`MAX_REFRESH_INTERVAL`]), and when a token names a `kid` the cache lacks. Every fetch attempt, successful or
//! not, starts at least [`MIN_REFETCH_INTERVAL`] after the previous one. A successful fetch replaces the cache, so
//! a key the issuer no longer publishes is refused from then on. A token whose `kid` is unknown waits for a fetch
//! that starts after it arrived (at most one window later) and is judged by that key set: refused if the key is not
//! there, 503 if that fetch fails.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::{AuthError, InvalidToken, Permissions, Principal, RoleMap, claim_at, role_names};

/// The shortest time between two fetch attempts of the key set, failed ones included, so that tokens with
/// made-up `kid`s cannot make the server hammer the issuer (or a failing issuer harder).
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(1);
/// The longest configurable time between scheduled fetches: it bounds how long a key the issuer removed is still
/// accepted (when no token with an unknown `kid` makes the server fetch sooner).
pub const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);
/// After a failed scheduled fetch the next one comes this soon (or at the interval, if shorter), so that an
/// issuer's short outage does not extend the life of removed keys by a whole interval.
const FAILED_REFRESH_RETRY: Duration = Duration::from_secs(30);
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
    /// How often the key set is refetched even when no unknown key appears (bounded by
    /// [`MAX_REFRESH_INTERVAL`]).
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
    /// When the fetch that returned these keys started: a token that arrived before it is judged by them.
    fetch_started: Instant,
}

/// The state of fetching, guarded by the mutex that serialises fetches.
struct FetchState {
    /// When the latest attempt started, successful or not; the next starts a window later at the earliest.
    last_attempt: Instant,
    /// Why the latest attempt failed, if it did.
    last_failure: Option<String>,
}

/// Verifies the bearer tokens of one issuer.
pub struct OidcVerifier {
    settings: OidcSettings,
    /// The issuer as the discovery document states it, the value `iss` must equal.
    issuer: String,
    jwks_uri: String,
    http: reqwest::Client,
    keys: RwLock<KeyCache>,
    /// Serialises fetches of the key set, and holds when the last one was tried.
    fetching: tokio::sync::Mutex<FetchState>,
    /// The least time between two fetch attempts: [`MIN_REFETCH_INTERVAL`], shorter in unit tests.
    refetch_window: Duration,
}

impl OidcVerifier {
    /// Reads the issuer's discovery document and key set. Fails when either is unreachable or unusable, so
    /// that a misconfigured issuer stops the server at start rather than refusing every request later.
    pub async fn discover(settings: OidcSettings) -> Result<Arc<OidcVerifier>, DiscoveryError> {
        Self::discover_with_window(settings, MIN_REFETCH_INTERVAL).await
    }

    async fn discover_with_window(
        settings: OidcSettings,
        refetch_window: Duration,
    ) -> Result<Arc<OidcVerifier>, DiscoveryError> {
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
        let fetch_started = Instant::now();
        let (by_kid, unnamed) = fetch_keys(&http, &document.jwks_uri).await?;
        if settings.jwks_refresh_interval > MAX_REFRESH_INTERVAL {
            tracing::warn!(
                configured_seconds = settings.jwks_refresh_interval.as_secs(),
                "the key refresh interval is capped at {} seconds, so that removed keys stop being accepted \
                 within that time",
                MAX_REFRESH_INTERVAL.as_secs()
            );
        }
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
                fetch_started,
            }),
            fetching: tokio::sync::Mutex::new(FetchState {
                last_attempt: fetch_started,
                last_failure: None,
            }),
            refetch_window,
        }))
    }

    /// The time between scheduled fetches: as configured, within [the refetch window, `MAX_REFRESH_INTERVAL`].
    fn refresh_interval(&self) -> Duration {
        self.settings
            .jwks_refresh_interval
            .clamp(self.refetch_window, MAX_REFRESH_INTERVAL)
    }

    /// Refetches the key set every refresh interval, for as long as the verifier lives. A failed fetch keeps the
    /// keys there are (the issuer being down must not lock everyone out) and is retried sooner.
    pub fn spawn_scheduled_refresh(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let interval = self.refresh_interval();
        tokio::spawn(async move {
            let mut delay = interval;
            loop {
                tokio::time::sleep(delay).await;
                let Some(verifier) = weak.upgrade() else {
                    return;
                };
                let mut state = verifier.fetching.lock().await;
                delay = match verifier.refetch(&mut state).await {
                    Ok(()) => interval,
                    Err(error) => {
                        tracing::warn!(%error, "scheduled refresh of the identity provider's keys failed; keeping the cached keys");
                        interval.min(FAILED_REFRESH_RETRY)
                    }
                };
            }
        });
    }

    /// Fetches the key set and replaces the cache, once the refetch window since the last attempt has passed.
    /// The caller holds `fetching` (whose guard `state` is), so waiting here holds back the other fetchers too.
    async fn refetch(&self, state: &mut FetchState) -> Result<(), DiscoveryError> {
        tokio::time::sleep_until((state.last_attempt + self.refetch_window).into()).await;
        let started = Instant::now();
        state.last_attempt = started;
        let (by_kid, unnamed) = match fetch_keys(&self.http, &self.jwks_uri).await {
            Ok(keys) => keys,
            Err(error) => {
                state.last_failure = Some(error.to_string());
                return Err(error);
            }
        };
        state.last_failure = None;
        let mut cache = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let removed = cache
            .by_kid
            .keys()
            .filter(|kid| !by_kid.contains_key(*kid))
            .count();
        let added = by_kid
            .keys()
            .filter(|kid| !cache.by_kid.contains_key(*kid))
            .count();
        tracing::info!(
            keys = by_kid.len() + unnamed.len(),
            added,
            removed,
            "identity provider keys refreshed"
        );
        // Replaced, not merged: a key the issuer stopped publishing is refused from now on.
        cache.by_kid = by_kid;
        cache.unnamed = unnamed;
        cache.fetch_started = started;
        Ok(())
    }

    /// Looks a key up in the cache; also returns when the fetch that filled the cache started.
    fn cached_key(&self, kid: Option<&str>) -> (Option<SigningKey>, Instant) {
        let cache = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = match kid {
            Some(kid) => cache.by_kid.get(kid).cloned(),
            None => match (cache.by_kid.len(), cache.unnamed.as_slice()) {
                (0, [only]) => Some(only.clone()),
                (1, []) => cache.by_kid.values().next().cloned(),
                _ => None,
            },
        };
        (key, cache.fetch_started)
    }

    /// The key a token that arrived at `arrived` names. An unknown `kid` may be a key the issuer published since
    /// the last fetch (rotation), so the token waits for a fetch that starts after it arrived, one at most: made-up
    /// `kid`s then cost the issuer one fetch per window, however many requests carry them.
    async fn key_for(&self, kid: Option<&str>, arrived: Instant) -> Result<SigningKey, AuthError> {
        if let (Some(key), _) = self.cached_key(kid) {
            return Ok(key);
        }
        let Some(kid) = kid else {
            return Err(AuthError::InvalidToken(InvalidToken::MissingKeyId));
        };
        let mut state = self.fetching.lock().await;
        // Another request may have fetched while this one waited for the lock.
        let (key, fetch_started) = self.cached_key(Some(kid));
        if let Some(key) = key {
            return Ok(key);
        }
        if fetch_started >= arrived {
            // A key set fetched after the token arrived lacks its key: the issuer does not publish it.
            return Err(AuthError::InvalidToken(InvalidToken::UnknownKey));
        }
        if state.last_attempt >= arrived
            && let Some(failure) = &state.last_failure
        {
            // The fetch this request waited for failed; fetching again at once would hammer the issuer.
            return Err(AuthError::KeysUnavailable(failure.clone()));
        }
        tracing::info!("a token names an unknown signing key; refetching the issuer's key set");
        self.refetch(&mut state)
            .await
            .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?;
        drop(state);
        self.cached_key(Some(kid))
            .0
            .ok_or(AuthError::InvalidToken(InvalidToken::UnknownKey))
    }

    /// Verifies a token and returns its caller with the permissions its roles grant.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let arrived = Instant::now();
        let invalid = AuthError::InvalidToken;
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid(InvalidToken::Malformed))?;
        // RFC 7515 4.1.11: extensions listed in `crit` must be understood, and this server implements none.
        if header.crit.is_some() {
            return Err(invalid(InvalidToken::UnsupportedCritical));
        }
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(invalid(InvalidToken::AlgorithmNotAllowed(format!(
                "{:?}",
                header.alg
            ))));
        }
        let key = self.key_for(header.kid.as_deref(), arrived).await?;
        if key.algorithm.is_some_and(|alg| alg != header.alg) {
            return Err(invalid(InvalidToken::BadSignature));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.settings.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        let claims = match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
            Ok(data) => data.claims,
            Err(error) => return Err(invalid(refusal_reason(token, error.kind()))),
        };
        // jsonwebtoken accepts an array as `iss` and ignores the types of the claims it does not check.
        if let Some(reason) = malformed_claim(&claims) {
            return Err(invalid(reason));
        }
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

/// Why jsonwebtoken refused a token. jsonwebtoken reports a claim of the wrong type as missing ("lacks the exp
/// claim" for `"exp": -1`) or as another issuer; a malformed claim is named as such instead.
fn refusal_reason(token: &str, kind: &ErrorKind) -> InvalidToken {
    let claims_checked = matches!(
        kind,
        ErrorKind::MissingRequiredClaim(_)
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::ExpiredSignature
            | ErrorKind::ImmatureSignature
            | ErrorKind::InvalidIssuer
            | ErrorKind::InvalidAudience
    );
    if claims_checked {
        // jsonwebtoken checks the claims only after the signature verified, so the payload read here is the
        // issuer's, and it is read only to say why the token is refused.
        if let Ok(data) = jsonwebtoken::dangerous::insecure_decode::<Value>(token)
            && let Some(reason) = malformed_claim(&data.claims)
        {
            return reason;
        }
    }
    reason_of(kind)
}

/// The first registered claim (RFC 7519 4.1) present with the wrong type, if any; a payload that is not a JSON
/// object is malformed as a whole.
fn malformed_claim(claims: &Value) -> Option<InvalidToken> {
    const NUMERIC_DATE: &str = "a NumericDate (seconds since 1970, not negative)";
    let Some(claims) = claims.as_object() else {
        return Some(InvalidToken::Malformed);
    };
    let numeric_date = |value: &Value| {
        value.as_u64().is_some()
            || value
                .as_f64()
                .is_some_and(|f| f.is_finite() && f >= 0.0 && f < u64::MAX as f64)
    };
    let malformed = |claim: &str, expected: &'static str| {
        Some(InvalidToken::MalformedClaim {
            claim: claim.to_owned(),
            expected,
        })
    };
    for claim in ["exp", "nbf", "iat"] {
        if claims.get(claim).is_some_and(|value| !numeric_date(value)) {
            return malformed(claim, NUMERIC_DATE);
        }
    }
    for claim in ["iss", "sub"] {
        if claims.get(claim).is_some_and(|value| !value.is_string()) {
            return malformed(claim, "a string");
        }
    }
    let audience = |value: &Value| match value {
        Value::String(_) => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        _ => false,
    };
    if claims.get("aud").is_some_and(|value| !audience(value)) {
        return malformed("aud", "a string or an array of strings");
    }
    None
}

fn reason_of(kind: &ErrorKind) -> InvalidToken {
    match kind {
        ErrorKind::ExpiredSignature => InvalidToken::Expired,
        ErrorKind::ImmatureSignature => InvalidToken::NotYetValid,
        ErrorKind::InvalidIssuer => InvalidToken::WrongIssuer,
        ErrorKind::InvalidAudience => InvalidToken::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => InvalidToken::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => InvalidToken::MalformedClaim {
            claim: claim.clone(),
            expected: "of the type RFC 7519 defines",
        },
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use jsonwebtoken::EncodingKey;
    use proptest::prelude::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Two P-256 signing keys (PKCS#8 DER, hex): the issuer publishes A (and B when a test says so).
    const KEY_A: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02010104200999881901aae8dc520c\
                         139f1ff34fcda379563ac9b468cfe79ddf6d0febcbc2a14403420004f68f2b86d4b9b2758541dc435d484cffcc4b\
                         a3e8c39975793f761aa86d15a516db5abf1b958344344c0eb350ddd23fd60ce759860d9ac48431894b011cf4cd1b";
    const KEY_B: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420e68c80e636e6f011659b\
                         e868e83ed2b1cb47a6470acedbe794d044fed0b3f292a14403420004e6fc300ad7b713c7a4bf10498228a574a2c6\
                         60bbc2ba5e220a44291fc6e51f93493175f868f79a5682a4f53378b51951291dff7ecf79c88d53ada2b1700acf07";

    fn jwk(kid: &str) -> Value {
        let (x, y) = match kid {
            "key-a" => (
                "9o8rhtS5snWFQdxDXUhM_8xLo-jDmXV5P3YaqG0VpRY",
                "21q_G5WDRDRMDrNQ3dI_1gznWYYNmsSEMYlLARz0zRs",
            ),
            _ => (
                "5vwwCte3E8ekvxBJgiildKLGYLvCul4iCkQpH8blH5M",
                "STF1-Gj3mlaCpPUzeLUZUSkd_37PeciNU62isXAKzwc",
            ),
        };
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"})
    }

    fn b64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            }
        }
        out
    }

    /// A token with exactly this header and these claims, signed with ES256 by `key` (hex DER).
    fn sign(header: &Value, claims: &Value, key: &str) -> String {
        let message = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let der: Vec<u8> = (0..key.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&key[i..i + 2], 16).unwrap())
            .collect();
        let key = EncodingKey::from_ec_der(&der);
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::ES256).unwrap();
        format!("{message}.{signature}")
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[derive(Default)]
    struct IssuerState {
        kids: Vec<&'static str>,
        jwks_failing: bool,
        jwks_fetches: usize,
    }

    /// An OpenID Connect issuer on 127.0.0.1: discovery and a JWKS of the keys `state.kids` names.
    struct TestIssuer {
        url: String,
        state: Arc<Mutex<IssuerState>>,
    }

    impl TestIssuer {
        async fn start(kids: &[&'static str]) -> TestIssuer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let state = Arc::new(Mutex::new(IssuerState {
                kids: kids.to_vec(),
                ..IssuerState::default()
            }));
            let (served_url, served_state) = (url.clone(), state.clone());
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let request = String::from_utf8_lossy(&request);
                    let path = request.split(' ').nth(1).unwrap_or_default();
                    let (status, body) = if path == "/.well-known/openid-configuration" {
                        let jwks_uri = format!("{served_url}/jwks");
                        (200, json!({"issuer": served_url, "jwks_uri": jwks_uri}))
                    } else {
                        let mut state = served_state.lock().unwrap();
                        state.jwks_fetches += 1;
                        if state.jwks_failing {
                            (503, json!({"error": "unavailable"}))
                        } else {
                            let keys: Vec<Value> = state.kids.iter().map(|kid| jwk(kid)).collect();
                            (200, json!({ "keys": keys }))
                        }
                    };
                    let body = body.to_string();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                }
            });
            TestIssuer { url, state }
        }

        fn publish(&self, kids: &[&'static str]) {
            self.state.lock().unwrap().kids = kids.to_vec();
        }

        fn fail_jwks(&self, failing: bool) {
            self.state.lock().unwrap().jwks_failing = failing;
        }

        fn fetches(&self) -> usize {
            self.state.lock().unwrap().jwks_fetches
        }

        fn settings(&self) -> OidcSettings {
            OidcSettings {
                issuer: self.url.clone(),
                audiences: vec!["dicomweb".to_owned()],
                roles_claim: "roles".to_owned(),
                algorithms: vec![Algorithm::ES256, Algorithm::RS256],
                leeway: Duration::from_secs(60),
                jwks_refresh_interval: Duration::from_secs(3600),
                roles: RoleMap::builtin(),
            }
        }

        async fn verifier(&self, window: Duration) -> Arc<OidcVerifier> {
            OidcVerifier::discover_with_window(self.settings(), window)
                .await
                .unwrap()
        }

        fn claims(&self) -> Value {
            json!({"iss": self.url, "aud": "dicomweb", "exp": now() + 300, "sub": "client", "roles": ["DicomDataReader"]})
        }

        fn token(&self, kid: &str, key: &str) -> String {
            sign(&json!({"alg": "ES256", "kid": kid}), &self.claims(), key)
        }
    }

    fn reason(result: Result<Principal, AuthError>) -> InvalidToken {
        match result {
            Err(AuthError::InvalidToken(reason)) => reason,
            Err(other) => panic!("expected an invalid token, got {other}"),
            Ok(_) => panic!("expected an invalid token, got it accepted"),
        }
    }

    #[tokio::test]
    async fn failed_key_fetches_are_rate_limited_like_successful_ones() {
        let issuer = TestIssuer::start(&["key-a"]).await;
        let window = Duration::from_millis(200);
        let verifier = issuer.verifier(window).await;
        issuer.fail_jwks(true);
        let before = issuer.fetches();
        let started = Instant::now();
        // Tokens naming a key the cache lacks, sent back to back and concurrently for about three windows.
        let unknown = issuer.token("made-up", KEY_B);
        let mut answers = Vec::new();
        while started.elapsed() < 3 * window {
            let requests = (0..8).map(|_| verifier.verify(&unknown));
            answers.extend(futures::future::join_all(requests).await);
        }
        let fetches = issuer.fetches() - before;
        let windows = (started.elapsed().as_millis() / window.as_millis()) as usize + 1;
        assert!(
            fetches <= windows,
            "{fetches} fetches in {} windows",
            windows
        );
        assert!(
            answers.len() > fetches,
            "requests shared the failed fetches"
        );
        for answer in answers {
            assert!(
                matches!(answer, Err(AuthError::KeysUnavailable(ref cause)) if cause.contains("HTTP 503")),
                "an unknown key while the issuer fails is a 503 naming the cause"
            );
        }
        // The cached key still works while the issuer fails.
        assert!(verifier.verify(&issuer.token("key-a", KEY_A)).await.is_ok());
    }

    #[tokio::test]
    async fn a_key_published_right_after_a_fetch_is_accepted_after_waiting_for_the_window() {
        let issuer = TestIssuer::start(&["key-a"]).await;
        // The production window: the token below comes well within a second of the fetch at discovery.
        let verifier = issuer.verifier(MIN_REFETCH_INTERVAL).await;
        issuer.publish(&["key-a", "key-b"]);
        let started = Instant::now();
        let principal = verifier.verify(&issuer.token("key-b", KEY_B)).await;
        assert!(principal.is_ok(), "refused: {:?}", principal.err());
        assert!(started.elapsed() <= MIN_REFETCH_INTERVAL + Duration::from_millis(500));
        assert_eq!(issuer.fetches(), 2, "one fetch at discovery, one for key-b");
    }

    #[tokio::test]
    async fn a_key_the_issuer_removed_is_refused_after_the_next_fetch() {
        let issuer = TestIssuer::start(&["key-a"]).await;
        let verifier = issuer.verifier(Duration::from_millis(10)).await;
        let old = issuer.token("key-a", KEY_A);
        assert!(verifier.verify(&old).await.is_ok());
        issuer.publish(&["key-b"]);
        // Rotation: a token with the new key makes the server fetch the key set, which no longer has key-a.
        assert!(verifier.verify(&issuer.token("key-b", KEY_B)).await.is_ok());
        assert_eq!(
            reason(verifier.verify(&old).await),
            InvalidToken::UnknownKey
        );
    }

    #[tokio::test]
    async fn the_scheduled_refresh_drops_removed_keys_and_its_interval_is_bounded() {
        let issuer = TestIssuer::start(&["key-a"]).await;
        let mut settings = issuer.settings();
        settings.jwks_refresh_interval = Duration::from_millis(100);
        let verifier = OidcVerifier::discover_with_window(settings, Duration::from_millis(10))
            .await
            .unwrap();
        verifier.spawn_scheduled_refresh();
        let old = issuer.token("key-a", KEY_A);
        assert!(verifier.verify(&old).await.is_ok());
        issuer.publish(&["key-b"]);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            reason(verifier.verify(&old).await),
            InvalidToken::UnknownKey
        );

        // A day configured is an hour at most.
        let mut settings = issuer.settings();
        settings.jwks_refresh_interval = Duration::from_secs(86_400);
        let verifier = OidcVerifier::discover(settings).await.unwrap();
        assert_eq!(verifier.refresh_interval(), MAX_REFRESH_INTERVAL);
    }

    #[tokio::test]
    async fn made_up_kids_cost_at_most_one_fetch_per_window() {
        let issuer = TestIssuer::start(&["key-a"]).await;
        let window = Duration::from_millis(200);
        let verifier = issuer.verifier(window).await;
        let before = issuer.fetches();
        let started = Instant::now();
        while started.elapsed() < 2 * window {
            let tokens: Vec<String> = (0..8)
                .map(|i| issuer.token(&format!("made-up-{i}"), KEY_B))
                .collect();
            for answer in futures::future::join_all(tokens.iter().map(|t| verifier.verify(t))).await
            {
                assert_eq!(reason(answer), InvalidToken::UnknownKey);
            }
        }
        let windows = (started.elapsed().as_millis() / window.as_millis()) as usize + 1;
        assert!(issuer.fetches() - before <= windows);
    }

    #[tokio::test]
    async fn lenient_token_checks_are_strict() {
        let issuer = TestIssuer::start(&["key-a", "key-b"]).await;
        let verifier = issuer.verifier(Duration::from_millis(10)).await;
        let header = json!({"alg": "ES256", "kid": "key-a"});
        let with = |changes: Value| {
            let mut claims = issuer.claims();
            for (name, value) in changes.as_object().unwrap() {
                claims[name] = value.clone();
            }
            sign(&header, &claims, KEY_A)
        };
        let crit = sign(
            &json!({"alg": "ES256", "kid": "key-a", "crit": ["exp"], "exp": 1}),
            &issuer.claims(),
            KEY_A,
        );
        assert_eq!(
            reason(verifier.verify(&crit).await),
            InvalidToken::UnsupportedCritical
        );

        let cases = [
            (json!({"iss": [issuer.url]}), "iss"),
            (json!({"exp": -1}), "exp"),
            (json!({"exp": "tomorrow"}), "exp"),
            (json!({"exp": null}), "exp"),
            (json!({"nbf": "now"}), "nbf"),
            (json!({"aud": 7}), "aud"),
            (json!({"aud": ["dicomweb", 7]}), "aud"),
            (json!({"sub": 42}), "sub"),
        ];
        for (changes, expected) in cases {
            let token = with(changes.clone());
            match reason(verifier.verify(&token).await) {
                InvalidToken::MalformedClaim { claim, .. } => {
                    assert_eq!(claim, expected, "{changes}")
                }
                other => panic!("{changes}: {other}"),
            }
        }
        let mut claims = issuer.claims();
        claims.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            reason(verifier.verify(&sign(&header, &claims, KEY_A)).await),
            InvalidToken::MissingClaim("exp".to_owned())
        );
        // A fractional NumericDate is a NumericDate.
        assert!(
            verifier
                .verify(&with(json!({"exp": now() as f64 + 300.5})))
                .await
                .is_ok()
        );
        let no_kid = sign(&json!({"alg": "ES256"}), &issuer.claims(), KEY_A);
        assert_eq!(
            reason(verifier.verify(&no_kid).await),
            InvalidToken::MissingKeyId
        );
    }

    /// A short name of a refusal's reason, to compare what was refused with what was wrong.
    fn label(reason: &InvalidToken) -> String {
        match reason {
            InvalidToken::Malformed => "malformed".to_owned(),
            InvalidToken::UnsupportedCritical => "crit".to_owned(),
            InvalidToken::AlgorithmNotAllowed(_) => "alg".to_owned(),
            InvalidToken::UnknownKey => "unknown-key".to_owned(),
            InvalidToken::MissingKeyId => "no-kid".to_owned(),
            InvalidToken::BadSignature => "signature".to_owned(),
            InvalidToken::Expired => "expired".to_owned(),
            InvalidToken::NotYetValid => "nbf".to_owned(),
            InvalidToken::WrongIssuer => "iss".to_owned(),
            InvalidToken::WrongAudience => "aud".to_owned(),
            InvalidToken::MissingClaim(claim) => format!("missing:{claim}"),
            InvalidToken::MalformedClaim { claim, .. } => format!("malformed:{claim}"),
        }
    }

    /// What a header field or claim value does to a token: nothing, or a defect at a layer (the checks report
    /// the defects of the lowest layer present) with its label.
    type Choice = (Option<Value>, Option<(u8, &'static str)>);

    /// A header field or claim: one of its acceptable values four times out of five, so that many tokens get
    /// past the header checks to the claims.
    fn field(
        name: &'static str,
        choices: Vec<Choice>,
    ) -> impl Strategy<Value = (&'static str, Choice)> {
        let (good, bad): (Vec<Choice>, Vec<Choice>) =
            choices.into_iter().partition(|(_, d)| d.is_none());
        let choice = if bad.is_empty() {
            prop::sample::select(good).boxed()
        } else {
            prop_oneof![4 => prop::sample::select(good), 1 => prop::sample::select(bad)].boxed()
        };
        choice.prop_map(move |choice| (name, choice))
    }

    /// The layers of checks: header (0: malformed, 1: crit, 2: algorithm, 3: key, 4: key algorithm), then claims
    /// (5: malformed claim, 6: missing claim, 7: a well-formed claim that fails its check).
    fn expected(
        fields: &[(&'static str, Choice)],
    ) -> Option<std::collections::BTreeSet<&'static str>> {
        let lowest = fields
            .iter()
            .filter_map(|(_, (_, d))| d.map(|(layer, _)| layer))
            .min()?;
        Some(
            fields
                .iter()
                .filter_map(|(_, (_, d))| {
                    d.filter(|(layer, _)| *layer == lowest)
                        .map(|(_, label)| label)
                })
                .collect(),
        )
    }

    fn object(fields: &[(&'static str, Choice)]) -> Value {
        Value::Object(
            fields
                .iter()
                .filter_map(|(name, (value, _))| value.clone().map(|v| (name.to_string(), v)))
                .collect(),
        )
    }

    fn fuzz_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn any_header_and_claims_get_an_answer_that_names_what_was_wrong() {
        let rt = fuzz_runtime();
        let issuer = rt.block_on(TestIssuer::start(&["key-a", "key-b"]));
        let verifier = rt.block_on(issuer.verifier(Duration::from_millis(1)));
        let (t, url) = (now(), issuer.url.clone());
        let fine = |v: Value| (Some(v), None);
        let bad = |v: Value, layer: u8, label: &'static str| (Some(v), Some((layer, label)));
        let header = (
            field(
                "alg",
                vec![
                    fine(json!("ES256")),
                    bad(json!("RS256"), 4, "signature"),
                    bad(json!("HS256"), 2, "alg"),
                    bad(json!("none"), 0, "malformed"),
                    bad(json!(5), 0, "malformed"),
                    (None, Some((0, "malformed"))),
                ],
            ),
            field(
                "kid",
                vec![
                    fine(json!("key-a")),
                    bad(json!("made-up"), 3, "unknown-key"),
                    (None, Some((3, "no-kid"))),
                    bad(json!(5), 0, "malformed"),
                ],
            ),
            field(
                "crit",
                vec![
                    (None, None),
                    bad(json!(["exp"]), 1, "crit"),
                    bad(json!([]), 1, "crit"),
                    bad(json!("b64"), 0, "malformed"),
                ],
            ),
            field(
                "typ",
                vec![
                    (None, None),
                    fine(json!("JWT")),
                    fine(json!("at+jwt")),
                    bad(json!(7), 0, "malformed"),
                ],
            ),
            field(
                "x-extension",
                vec![
                    (None, None),
                    fine(json!({"any": [1, "thing"]})),
                    fine(json!(null)),
                ],
            ),
        );
        let claims = (
            field(
                "exp",
                vec![
                    fine(json!(t + 300)),
                    fine(json!(t as f64 + 300.5)),
                    bad(json!(t - 3600), 7, "expired"),
                    bad(json!(-5), 5, "malformed:exp"),
                    bad(json!("soon"), 5, "malformed:exp"),
                    bad(json!(null), 5, "malformed:exp"),
                    (None, Some((6, "missing:exp"))),
                ],
            ),
            field(
                "nbf",
                vec![
                    (None, None),
                    fine(json!(t - 10)),
                    bad(json!(t + 3600), 7, "nbf"),
                    bad(json!("now"), 5, "malformed:nbf"),
                    bad(json!(-1), 5, "malformed:nbf"),
                ],
            ),
            field(
                "iat",
                vec![
                    (None, None),
                    fine(json!(t)),
                    bad(json!("yesterday"), 5, "malformed:iat"),
                ],
            ),
            field(
                "iss",
                vec![
                    fine(json!(url)),
                    bad(json!("http://127.0.0.1:1/other"), 7, "iss"),
                    bad(json!([url]), 5, "malformed:iss"),
                    bad(json!(5), 5, "malformed:iss"),
                    (None, Some((6, "missing:iss"))),
                ],
            ),
            field(
                "aud",
                vec![
                    fine(json!("dicomweb")),
                    fine(json!(["other", "dicomweb"])),
                    bad(json!("other"), 7, "aud"),
                    bad(json!([]), 7, "aud"),
                    bad(json!(5), 5, "malformed:aud"),
                    bad(json!(["dicomweb", 5]), 5, "malformed:aud"),
                    (None, Some((6, "missing:aud"))),
                ],
            ),
            field(
                "sub",
                vec![
                    (None, None),
                    fine(json!("client")),
                    bad(json!(42), 5, "malformed:sub"),
                ],
            ),
            field(
                "roles",
                vec![
                    (None, None),
                    fine(json!(["DicomDataReader"])),
                    fine(json!(5)),
                ],
            ),
        );
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(256));
        runner
            .run(&(header, claims), |(h, c)| {
                let header = [h.0, h.1, h.2, h.3, h.4];
                let claims = [c.0, c.1, c.2, c.3, c.4, c.5, c.6];
                let token = sign(&object(&header), &object(&claims), KEY_A);
                let answer = rt.block_on(verifier.verify(&token));
                let wanted = expected(&header).or_else(|| expected(&claims));
                match (answer, wanted) {
                    (Ok(_), None) => {}
                    (Err(AuthError::InvalidToken(reason)), Some(wanted)) => {
                        prop_assert!(
                            wanted.contains(label(&reason).as_str()),
                            "refused for \"{reason}\", expected one of {wanted:?}"
                        );
                        prop_assert!(!reason.to_string().contains(&token));
                    }
                    (answer, wanted) => {
                        prop_assert!(
                            false,
                            "answer {:?}, expected {wanted:?}",
                            answer.map(|p| p.subject)
                        )
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn garbage_tokens_are_refused_as_invalid_never_as_a_server_error() {
        let rt = fuzz_runtime();
        let issuer = rt.block_on(TestIssuer::start(&["key-a", "key-b"]));
        let verifier = rt.block_on(issuer.verifier(Duration::from_millis(1)));
        let segment = prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| b64url(&b));
        let header = prop::sample::select(vec![
            json!({"alg": "ES256", "kid": "key-a"}),
            json!({"alg": "ES256", "kid": "made-up"}),
            json!({"alg": "RS256"}),
        ])
        .prop_map(|h| b64url(h.to_string().as_bytes()));
        let tokens = prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_.=+/-]{0,300}",
            (segment.clone(), segment.clone(), segment.clone())
                .prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
            (header, segment.clone(), segment).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        ];
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
        runner
            .run(&tokens, |token| {
                match rt.block_on(verifier.verify(&token)) {
                    Err(AuthError::InvalidToken(reason)) => {
                        prop_assert!(!reason.to_string().is_empty())
                    }
                    other => prop_assert!(false, "{token:?}: {:?}", other.map(|p| p.subject)),
                }
                Ok(())
            })
            .unwrap();
    }
}

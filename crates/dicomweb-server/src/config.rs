//! Configuration: command-line flags, then environment variables (`DICOMWEB_*`), then a TOML file, then defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::auth::Permission;
use crate::auth::RoleMap;
use crate::auth::oidc::OidcSettings;
use crate::body::BodyLimits;
use crate::origin::{PublicUrl, parse_trusted_proxy};
use ipnet::IpNet;

/// The `dicomweb` command line.
#[derive(Debug, Parser)]
#[command(
    name = "dicomweb",
    version,
    about = "A DICOMweb server: STOW-RS, WADO-RS, QIDO-RS, delete and change feed"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the DICOMweb API.
    Serve(ServeArgs),
    /// Rebuild the search index from the catalogue of record (after losing, corrupting or replacing the index
    /// directory), then exit; when the catalogue itself is empty and storage is not, rebuild the catalogue from
    /// storage first. The server catches its index up with the catalogue by itself on start. Stop the server
    /// first: the catalogue admits one process at a time.
    Reindex(ServeArgs),
    /// Verify that the storage backend is reachable and writable (writes, reads back and deletes a probe), then
    /// exit: 0 when it is, 1 with the URL and the cause when it is not.
    Check(ServeArgs),
    /// Print every route (method, path, required permission) as JSON, for the tests.
    #[command(hide = true)]
    Routes,
}

/// Flags of `dicomweb serve`; each also reads an environment variable.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "DICOMWEB_BIND")]
    pub bind: Option<SocketAddr>,
    /// Directory for the index and temporary files [default: ./data].
    #[arg(long, env = "DICOMWEB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where DICOM files are stored: a path, file:///dir or memory:// [default: <data-dir>/blobs].
    #[arg(long, env = "DICOMWEB_STORAGE")]
    pub storage: Option<String>,
    /// A TOML file with the same settings (bind, data_dir, storage, workers, storage_retry_timeout,
    /// store_flush_delay_ms, index_commit_delay_ms, body_idle_timeout, spool_memory_mib,
    /// transcode_whole_max_mib, max_decoded_body_mib, max_decoding_ratio, cors_origins, tls_cert, tls_key,
    /// allow_anonymous, public_url, trusted_proxies, and an [auth] table with issuer, audience, roles_claim, algorithms, leeway_seconds,
    /// jwks_refresh_seconds and [auth.roles]).
    #[arg(long, env = "DICOMWEB_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP worker threads [default: number of cores].
    #[arg(long, env = "DICOMWEB_WORKERS")]
    pub workers: Option<usize>,
    /// How long a storage operation is retried (with backoff) after transient failures before the request
    /// fails with 503, in seconds [default: 120].
    #[arg(long, env = "DICOMWEB_STORAGE_RETRY_TIMEOUT")]
    pub storage_retry_timeout: Option<u64>,
    /// On local disk, how long after a store of a small instance (up to 256 KiB) its file is flushed, in
    /// milliseconds; the 200 does not wait for it (a copy of the file is in the catalogue commit meanwhile),
    /// and the stores of this interval share one flush [default: 100].
    #[arg(long, env = "DICOMWEB_STORE_FLUSH_DELAY_MS")]
    pub store_flush_delay_ms: Option<u64>,
    /// How long after a write the search index commits it, in milliseconds; searches do not wait for it (what
    /// the index has not committed is matched in memory), and the writes of this interval share one index
    /// commit [default: 250].
    #[arg(long, env = "DICOMWEB_INDEX_COMMIT_DELAY_MS")]
    pub index_commit_delay_ms: Option<u64>,
    /// How long a request body may make the server wait without delivering 16 KiB, in seconds, before the
    /// request ends with 408 (the part being received is not stored) [default: 30].
    #[arg(long, env = "DICOMWEB_BODY_IDLE_TIMEOUT")]
    pub body_idle_timeout: Option<u64>,
    /// The memory all instances being received may hold at once, in MiB; past it they are spooled to disk
    /// [default: 256].
    #[arg(long, env = "DICOMWEB_SPOOL_MEMORY_MIB")]
    pub spool_memory_mib: Option<u64>,
    /// A retrieve transcodes instances up to this size whole in memory, in MiB; larger ones are transcoded
    /// frame by frame as they are sent (but to deflated or lossy syntaxes) [default: 32].
    #[arg(long, env = "DICOMWEB_TRANSCODE_WHOLE_MAX_MIB")]
    pub transcode_whole_max_mib: Option<u64>,
    /// The most a gzip or deflate request body may decode to, in MiB; past it 413 [default: 4096].
    #[arg(long, env = "DICOMWEB_MAX_DECODED_BODY_MIB")]
    pub max_decoded_body_mib: Option<u64>,
    /// The most a gzip or deflate request body may expand (decoded bytes per encoded byte, checked past 16 MiB
    /// decoded); past it 413; 0 turns the check off [default: 200].
    #[arg(long, env = "DICOMWEB_MAX_DECODING_RATIO")]
    pub max_decoding_ratio: Option<u64>,
    /// OpenID Connect issuer whose bearer tokens are accepted (discovery at
    /// <issuer>/.well-known/openid-configuration); enables authentication.
    #[arg(long, env = "DICOMWEB_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,
    /// Accepted token audiences (`aud`), comma-separated; required with --auth-issuer.
    #[arg(long, env = "DICOMWEB_AUTH_AUDIENCE", value_delimiter = ',')]
    pub auth_audience: Vec<String>,
    /// The claim holding the caller's roles, a name or a dotted path such as realm_access.roles
    /// [default: roles].
    #[arg(long, env = "DICOMWEB_AUTH_ROLES_CLAIM")]
    pub auth_roles_claim: Option<String>,
    /// Accepted signing algorithms, comma-separated [default: RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384].
    #[arg(long, env = "DICOMWEB_AUTH_ALGORITHMS", value_delimiter = ',')]
    pub auth_algorithms: Vec<String>,
    /// Clock skew tolerated on a token's exp and nbf, in seconds [default: 60].
    #[arg(long, env = "DICOMWEB_AUTH_LEEWAY")]
    pub auth_leeway: Option<u64>,
    /// How often the issuer's signing keys are refetched, in seconds [default: 300, at most 3600]; a token
    /// signed with an unknown key also triggers a refetch.
    #[arg(long, env = "DICOMWEB_AUTH_JWKS_REFRESH")]
    pub auth_jwks_refresh: Option<u64>,
    /// Origins allowed to call the API from a browser (CORS), comma-separated or repeated; `*` allows any
    /// [default: none, CORS off].
    #[arg(
        long = "cors-origin",
        env = "DICOMWEB_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// PEM certificate chain; with --tls-key the server speaks HTTPS only.
    #[arg(long, env = "DICOMWEB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "DICOMWEB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve without authentication on an address other than loopback (everyone who can reach it may read,
    /// store and delete).
    #[arg(long, env = "DICOMWEB_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,
    /// The base URL clients reach the server by (http(s)://host[:port][/path]), for the URLs in responses;
    /// when set, request headers never change them [default: from the request, see --trusted-proxy].
    #[arg(long, env = "DICOMWEB_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Addresses or networks (10.0.0.0/8) of reverse proxies whose Forwarded / X-Forwarded-Host /
    /// X-Forwarded-Proto headers are believed for the URLs in responses, comma-separated or repeated
    /// [default: none: only the Host header counts].
    #[arg(
        long = "trusted-proxy",
        env = "DICOMWEB_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub storage: Option<String>,
    pub workers: Option<usize>,
    pub storage_retry_timeout: Option<u64>,
    pub store_flush_delay_ms: Option<u64>,
    pub index_commit_delay_ms: Option<u64>,
    pub body_idle_timeout: Option<u64>,
    pub spool_memory_mib: Option<u64>,
    pub transcode_whole_max_mib: Option<u64>,
    pub max_decoded_body_mib: Option<u64>,
    pub max_decoding_ratio: Option<u64>,
    pub cors_origins: Option<Vec<String>>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_anonymous: Option<bool>,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub auth: Option<FileAuth>,
}

/// The `[auth]` table of the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAuth {
    pub issuer: Option<String>,
    pub audience: Option<OneOrMany>,
    pub roles_claim: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub leeway_seconds: Option<u64>,
    pub jwks_refresh_seconds: Option<u64>,
    /// Role names to permissions, added to the built-in roles (`[auth.roles] Radiologist = ["read"]`).
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<Permission>>,
}

/// A TOML value that may be one string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// Settings after merging every source.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub storage: String,
    pub workers: usize,
    /// Retry deadline of storage operations.
    pub storage_retry_timeout: std::time::Duration,
    /// How long the files of small local stores wait for their shared flush.
    pub store_flush_delay: std::time::Duration,
    /// How long after a write the search index commits it.
    pub index_commit_delay: std::time::Duration,
    /// Idle timeout and decoding bounds of request bodies.
    pub body: BodyLimits,
    /// Bytes all spools may hold in memory at once.
    pub spool_memory: usize,
    /// Instances up to this size are transcoded whole in memory, larger ones frame by frame.
    pub transcode_whole_max_bytes: u64,
    /// Bearer-token authentication; `None` serves everyone.
    pub auth: Option<OidcSettings>,
    /// Origins allowed by CORS; empty: CORS off.
    pub cors_origins: Vec<String>,
    pub tls: Option<TlsFiles>,
    pub allow_anonymous: bool,
    /// The base URL of the URLs in responses; `None`: from the request.
    pub public_url: Option<PublicUrl>,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
}

const MIB: u64 = 1024 * 1024;

/// Certificate chain and private key, PEM.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The algorithms accepted when none are configured: every asymmetric one the verifier supports. Symmetric
/// (HS*) algorithms are never accepted: their key would be a secret shared with every client.
pub const DEFAULT_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

impl Settings {
    /// Merges flags/environment (already combined by clap) over the TOML file over defaults.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileSettings::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let storage = args
            .storage
            .clone()
            .or(file.storage)
            .unwrap_or_else(|| data_dir.join("blobs").to_string_lossy().into_owned());
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together: give both or neither"),
        };
        let cors_origins = if args.cors_origins.is_empty() {
            file.cors_origins.unwrap_or_default()
        } else {
            args.cors_origins.clone()
        };
        let cors_origins = cors_origins
            .into_iter()
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect::<Vec<_>>();
        for origin in &cors_origins {
            check_origin(origin)?;
        }
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .filter(|u| !u.trim().is_empty())
            .map(|u| PublicUrl::parse(&u))
            .transpose()?;
        let trusted_proxies = if args.trusted_proxies.is_empty() {
            file.trusted_proxies.unwrap_or_default()
        } else {
            args.trusted_proxies.clone()
        }
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| parse_trusted_proxy(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Settings {
            public_url,
            trusted_proxies,
            auth: resolve_auth(args, file.auth.unwrap_or_default())?,
            cors_origins,
            tls,
            allow_anonymous: args.allow_anonymous || file.allow_anonymous.unwrap_or(false),
            bind: args
                .bind
                .or(file.bind)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir,
            storage,
            storage_retry_timeout: std::time::Duration::from_secs(
                args.storage_retry_timeout
                    .or(file.storage_retry_timeout)
                    .unwrap_or(120),
            ),
            store_flush_delay: std::time::Duration::from_millis(
                args.store_flush_delay_ms
                    .or(file.store_flush_delay_ms)
                    .unwrap_or(100),
            ),
            index_commit_delay: std::time::Duration::from_millis(
                args.index_commit_delay_ms
                    .or(file.index_commit_delay_ms)
                    .unwrap_or(250),
            ),
            transcode_whole_max_bytes: args
                .transcode_whole_max_mib
                .or(file.transcode_whole_max_mib)
                .unwrap_or(32)
                .saturating_mul(MIB),
            body: BodyLimits {
                idle_timeout: Duration::from_secs(
                    args.body_idle_timeout
                        .or(file.body_idle_timeout)
                        .unwrap_or(30)
                        .max(1),
                ),
                max_decoded: args
                    .max_decoded_body_mib
                    .or(file.max_decoded_body_mib)
                    .unwrap_or(4096)
                    .saturating_mul(MIB),
                max_ratio: args
                    .max_decoding_ratio
                    .or(file.max_decoding_ratio)
                    .unwrap_or(200),
            },
            spool_memory: usize::try_from(
                args.spool_memory_mib
                    .or(file.spool_memory_mib)
                    .unwrap_or(256)
                    .saturating_mul(MIB),
            )
            .unwrap_or(usize::MAX),
            workers: args.workers.or(file.workers).unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            }),
        })
    }
}

impl Settings {
    /// Refuses to serve without authentication on an address other than loopback unless anonymous access was
    /// asked for explicitly: an archive of patient data must not end up open on a network by omission.
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        if self.auth.is_none() && !self.bind.ip().is_loopback() && !self.allow_anonymous {
            anyhow::bail!(
                "refusing to listen on {} without authentication: anyone who can reach it could read, store and \
                 delete every study. Configure an identity provider (--auth-issuer and --auth-audience), bind to \
                 127.0.0.1, or pass --allow-anonymous if access is controlled elsewhere (a private network, an \
                 authenticating proxy)",
                self.bind
            );
        }
        Ok(())
    }
}

fn resolve_auth(args: &ServeArgs, file: FileAuth) -> anyhow::Result<Option<OidcSettings>> {
    let Some(issuer) = args.auth_issuer.clone().or(file.issuer) else {
        if !args.auth_audience.is_empty() || file.audience.is_some() {
            anyhow::bail!("an audience is configured but no issuer: set --auth-issuer too");
        }
        return Ok(None);
    };
    check_issuer(&issuer)?;
    let audiences = if args.auth_audience.is_empty() {
        file.audience.map(OneOrMany::into_vec).unwrap_or_default()
    } else {
        args.auth_audience.clone()
    };
    let audiences: Vec<String> = audiences
        .into_iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    if audiences.is_empty() {
        anyhow::bail!(
            "--auth-issuer needs --auth-audience: the audience (aud) the identity provider puts in tokens for \
             this server (Entra ID: the application ID URI or client ID; Keycloak: the client ID)"
        );
    }
    let algorithm_names = if args.auth_algorithms.is_empty() {
        file.algorithms.unwrap_or_default()
    } else {
        args.auth_algorithms.clone()
    };
    let algorithms = if algorithm_names.is_empty() {
        DEFAULT_ALGORITHMS.to_vec()
    } else {
        algorithm_names
            .iter()
            .map(|name| parse_algorithm(name.trim()))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    Ok(Some(OidcSettings {
        issuer,
        audiences,
        roles_claim: args
            .auth_roles_claim
            .clone()
            .or(file.roles_claim)
            .unwrap_or_else(|| "roles".to_owned()),
        algorithms,
        leeway: Duration::from_secs(args.auth_leeway.or(file.leeway_seconds).unwrap_or(60)),
        jwks_refresh_interval: Duration::from_secs(
            args.auth_jwks_refresh
                .or(file.jwks_refresh_seconds)
                .unwrap_or(300)
                .max(1),
        ),
        roles: RoleMap::with(&file.roles),
    }))
}

fn parse_algorithm(name: &str) -> anyhow::Result<Algorithm> {
    DEFAULT_ALGORITHMS
        .into_iter()
        .find(|alg| format!("{alg:?}").eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "signing algorithm \"{name}\" is not accepted; choose among {}",
                DEFAULT_ALGORITHMS
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The issuer must be https, except on a loopback address (a development or test issuer): keys fetched over
/// plain HTTP from elsewhere could be swapped by anyone on the path.
fn check_issuer(issuer: &str) -> anyhow::Result<()> {
    if issuer.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = issuer.strip_prefix("http://") {
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => authority,
        };
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            return Ok(());
        }
    }
    anyhow::bail!(
        "the issuer \"{issuer}\" must be an https:// URL (http:// only on a loopback address)"
    )
}

/// A CORS origin is `*` or `scheme://host[:port]`, as browsers send it in `Origin`.
fn check_origin(origin: &str) -> anyhow::Result<()> {
    let well_formed = origin == "*"
        || origin.split_once("://").is_some_and(|(scheme, authority)| {
            matches!(scheme, "http" | "https")
                && !authority.is_empty()
                && !authority.contains('/')
                && authority.chars().all(|c| c.is_ascii_graphic())
        });
    if well_formed {
        Ok(())
    } else {
        anyhow::bail!(
            "CORS origin \"{origin}\" is not an origin: use scheme://host[:port] without a path (or *)"
        )
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!("cannot read the configuration file {}: {e}", path.display())
    })?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid configuration file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_local_data() {
        let s = Settings::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.storage, "./data/blobs");
        assert_eq!(s.store_flush_delay, std::time::Duration::from_millis(100));
        assert_eq!(s.index_commit_delay, std::time::Duration::from_millis(250));
        assert_eq!(s.body, BodyLimits::default());
        assert_eq!(s.spool_memory, 256 * 1024 * 1024);
    }

    #[test]
    fn body_limits_come_from_flags_then_the_file() {
        let (_dir, path) = write_file(
            "body_idle_timeout = 5\nspool_memory_mib = 64\nmax_decoded_body_mib = 100\nmax_decoding_ratio = 0\n",
        );
        let s = Settings::resolve(&ServeArgs {
            config: Some(path),
            body_idle_timeout: Some(2),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.body,
            BodyLimits {
                idle_timeout: Duration::from_secs(2),
                max_decoded: 100 * 1024 * 1024,
                max_ratio: 0,
            }
        );
        assert_eq!(s.spool_memory, 64 * 1024 * 1024);
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dicomweb.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\nstorage = \"memory://\"\ndata_dir = \"/tmp/x\"\n\
             index_commit_delay_ms = 1000\nstore_flush_delay_ms = 50\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            storage: Some("/srv/dicom".into()),
            index_commit_delay_ms: Some(500),
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.index_commit_delay, std::time::Duration::from_millis(500));
        assert_eq!(s.store_flush_delay, std::time::Duration::from_millis(50));
        assert_eq!(s.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(s.storage, "/srv/dicom");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dicomweb.toml");
        std::fs::write(&path, "bnid = \"127.0.0.1:9000\"\n").unwrap();
        let err = Settings::resolve(&ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("bnid"), "{err}");
    }

    fn write_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dicomweb.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn auth_from_the_file_with_roles_and_flags_over_it() {
        let (_dir, path) = write_file(
            "[auth]\nissuer = \"https://login.microsoftonline.com/tenant/v2.0\"\naudience = \"api://dicom\"\n\
             roles_claim = \"realm_access.roles\"\nalgorithms = [\"RS256\"]\n\
             [auth.roles]\nRadiologist = [\"read\", \"write\"]\n",
        );
        let args = ServeArgs {
            config: Some(path),
            auth_leeway: Some(5),
            ..Default::default()
        };
        let auth = Settings::resolve(&args).unwrap().auth.unwrap();
        assert_eq!(auth.issuer, "https://login.microsoftonline.com/tenant/v2.0");
        assert_eq!(auth.audiences, ["api://dicom"]);
        assert_eq!(auth.roles_claim, "realm_access.roles");
        assert_eq!(auth.algorithms, [Algorithm::RS256]);
        assert_eq!(auth.leeway, Duration::from_secs(5));
        assert_eq!(
            auth.roles.permissions_of(["Radiologist"]),
            [Permission::Read, Permission::Write].into_iter().collect()
        );
        assert_eq!(
            auth.roles.permissions_of(["DicomDataOwner"]),
            crate::auth::Permissions::ALL
        );
    }

    #[test]
    fn auth_settings_are_checked() {
        let with = |issuer: &str, audience: &[&str], algorithms: &[&str]| {
            Settings::resolve(&ServeArgs {
                auth_issuer: Some(issuer.into()),
                auth_audience: audience.iter().map(|s| s.to_string()).collect(),
                auth_algorithms: algorithms.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
        };
        let defaults = with("http://127.0.0.1:9000/realms/x", &["dicom"], &[])
            .unwrap()
            .auth
            .unwrap();
        assert_eq!(defaults.algorithms, DEFAULT_ALGORITHMS);
        assert_eq!(defaults.roles_claim, "roles");
        let missing_audience = with("https://issuer.example", &[], &[]).unwrap_err();
        assert!(missing_audience.to_string().contains("--auth-audience"));
        let symmetric = with("https://issuer.example", &["a"], &["HS256"]).unwrap_err();
        assert!(symmetric.to_string().contains("HS256"), "{symmetric}");
        let plain_http = with("http://issuer.example", &["a"], &[]).unwrap_err();
        assert!(plain_http.to_string().contains("https://"), "{plain_http}");
        assert!(with("http://localhost:8081", &["a"], &["es256"]).is_ok());
        assert!(with("http://[::1]:8081/", &["a"], &[]).is_ok());
    }

    #[test]
    fn anonymous_access_beyond_loopback_must_be_asked_for() {
        let bind = |address: &str, allow_anonymous: bool| {
            Settings::resolve(&ServeArgs {
                bind: Some(address.parse().unwrap()),
                allow_anonymous,
                ..Default::default()
            })
            .unwrap()
            .check_exposure()
        };
        let refused = bind("0.0.0.0:8080", false).unwrap_err();
        assert!(
            refused.to_string().contains("--allow-anonymous"),
            "{refused}"
        );
        assert!(bind("0.0.0.0:8080", true).is_ok());
        assert!(bind("127.0.0.1:8080", false).is_ok());
        assert!(bind("[::1]:8080", false).is_ok());
        let authenticated = Settings::resolve(&ServeArgs {
            bind: Some("0.0.0.0:8080".parse().unwrap()),
            auth_issuer: Some("https://issuer.example".into()),
            auth_audience: vec!["dicom".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(authenticated.check_exposure().is_ok());
    }

    #[test]
    fn tls_files_go_together_and_cors_origins_are_origins() {
        let only_cert = Settings::resolve(&ServeArgs {
            tls_cert: Some("cert.pem".into()),
            ..Default::default()
        });
        assert!(only_cert.is_err());
        let origins = |list: &[&str]| {
            Settings::resolve(&ServeArgs {
                cors_origins: list.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
        };
        assert_eq!(
            origins(&["https://viewer.example", "http://localhost:3000"])
                .unwrap()
                .cors_origins,
            ["https://viewer.example", "http://localhost:3000"]
        );
        assert!(origins(&["*"]).is_ok());
        assert!(origins(&["https://viewer.example/ohif"]).is_err());
        assert!(origins(&["viewer.example"]).is_err());
    }

    #[test]
    fn public_url_and_trusted_proxies_are_validated_at_start() {
        let (_dir, path) = write_file(
            "public_url = \"https://pacs.example.org/dicomweb/\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        );
        let s = Settings::resolve(&ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.public_url.unwrap().as_str(),
            "https://pacs.example.org/dicomweb"
        );
        assert_eq!(s.trusted_proxies.len(), 2);
        let defaults = Settings::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(
            (defaults.public_url, defaults.trusted_proxies),
            (None, vec![])
        );
        let bad_url = Settings::resolve(&ServeArgs {
            public_url: Some("javascript://evil.example.com/".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(bad_url.to_string().contains("http or https"), "{bad_url}");
        let bad_proxy = Settings::resolve(&ServeArgs {
            trusted_proxies: vec!["proxy.example".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            bad_proxy.to_string().contains("proxy.example"),
            "{bad_proxy}"
        );
    }
}

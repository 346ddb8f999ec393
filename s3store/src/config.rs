//! Where an `S3Store` is and how it signs in: `s3://bucket/prefix` plus
//! the standard AWS environment variables and files, read the way the AWS
//! CLI reads them (only the parts a replica store needs):
//!
//! * credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//!   `AWS_SESSION_TOKEN`; else the profile `AWS_PROFILE` (or `default`) of
//!   the credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//!   `~/.aws/credentials`), then of the config file (`AWS_CONFIG_FILE`,
//!   default `~/.aws/config`, sections `[default]` and `[profile NAME]`).
//!   Only static keys: no instance metadata, SSO or role assumption.
//! * region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`,
//!   else `us-east-1`.
//! * endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's
//!   `endpoint_url`, else AWS itself. With an endpoint, requests use path
//!   style (`http://host/bucket/key`, what S3-compatible servers expect);
//!   `AWS_S3_ADDRESSING_STYLE=virtual|path` overrides.
//! * plain `http://` endpoints are allowed on a loopback address only,
//!   unless `AWS_ALLOW_HTTP=true`.
//!
//! Secrets live in `Secret`, whose `Debug` prints `***`; `S3Config`'s
//! `Debug` therefore never shows a credential.

use libcore::replica::store::check_prefix;
use libcore::{Error, Result, StoreFault};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A credential string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// Time limits and retry counts. Every request is bounded, so a stalled
/// connection costs at most about `(retries + 1) * request_timeout` plus
/// backoff, never forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Establishing a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// No byte received for this long fails the request.
    pub read_timeout: Duration,
    /// One whole request, a multipart part included.
    pub request_timeout: Duration,
    /// Retries of idempotent requests (get, list, put, delete, parts).
    pub retries: usize,
    /// Attempts of a conditional write (create, replace) in all.
    pub conditional_attempts: usize,
    /// First backoff between attempts; doubles each time.
    pub backoff: Duration,
    /// Files above this size go as multipart uploads of parts this big
    /// (S3 wants at least 5 MiB).
    pub part_size: usize,
    /// Parts uploaded at once.
    pub part_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            retries: 3,
            conditional_attempts: 4,
            backoff: Duration::from_millis(200),
            part_size: 8 << 20,
            part_concurrency: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket, without slashes at either end ("" for
    /// the whole bucket).
    pub prefix: String,
    pub region: String,
    /// `None` for AWS itself.
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub allow_http: bool,
    pub credentials: Credentials,
    pub limits: Limits,
}

fn invalid(location: &str, what: impl Into<String>) -> Error {
    Error::store(location, "", StoreFault::Invalid, what)
}

/// Splits `s3://bucket/prefix` into the bucket and the prefix.
pub fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| invalid(url, "not an s3://bucket/prefix address"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(invalid(
            url,
            format!("invalid bucket name {bucket:?} (3 to 63 of a-z 0-9 . -)"),
        ));
    }
    let prefix = prefix.trim_end_matches('/').to_string();
    check_prefix(url, &prefix)?;
    Ok((bucket.to_string(), prefix))
}

/// `key = value` lines of one section of an AWS ini file.
type Section = HashMap<String, String>;

/// Parses an AWS credentials or config file into sections.
pub fn parse_ini(text: &str) -> HashMap<String, Section> {
    let mut out: HashMap<String, Section> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if let (Some(sec), Some((k, v))) = (&current, line.split_once('=')) {
            if let Some(s) = out.get_mut(sec) {
                s.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    out
}

/// Reads the environment through `env` (so tests need not change the
/// process's own) and files from disk.
pub struct EnvSource<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl EnvSource<'_> {
    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }

    fn aws_file(&self, var: &str, default: &str) -> Option<PathBuf> {
        self.var(var)
            .map(PathBuf::from)
            .or_else(|| self.var("HOME").map(|h| PathBuf::from(h).join(default)))
    }

    /// The profile's section of a file (`None` if the file or the section
    /// is missing). Config files name sections `profile NAME`.
    fn profile_section(
        &self,
        path: Option<PathBuf>,
        profile: &str,
        config: bool,
    ) -> Option<Section> {
        let text = std::fs::read_to_string(path?).ok()?;
        let mut ini = parse_ini(&text);
        if config && profile != "default" {
            ini.remove(&format!("profile {profile}"))
        } else {
            ini.remove(profile)
        }
    }
}

impl S3Config {
    /// The configuration for `url` from the process's environment.
    pub fn from_env(url: &str) -> Result<S3Config> {
        let env = |k: &str| std::env::var(k).ok();
        S3Config::from_source(url, &EnvSource { env: &env })
    }

    /// The configuration for `url`, reading variables through `src`.
    pub fn from_source(url: &str, src: &EnvSource) -> Result<S3Config> {
        let (bucket, prefix) = parse_url(url)?;
        let profile_named = src.var("AWS_PROFILE");
        let profile = profile_named.clone().unwrap_or_else(|| "default".into());
        let creds_file = src.profile_section(
            src.aws_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            &profile,
            false,
        );
        let config_file = src.profile_section(
            src.aws_file("AWS_CONFIG_FILE", ".aws/config"),
            &profile,
            true,
        );
        if profile_named.is_some() && creds_file.is_none() && config_file.is_none() {
            return Err(invalid(
                url,
                format!("AWS profile {profile:?} not found in the AWS credentials or config file"),
            ));
        }
        let from_files = |k: &str| {
            creds_file
                .as_ref()
                .and_then(|s| s.get(k))
                .or_else(|| config_file.as_ref().and_then(|s| s.get(k)))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let credentials = credentials(url, src, &from_files)?;
        let region = src
            .var("AWS_REGION")
            .or_else(|| src.var("AWS_DEFAULT_REGION"))
            .or_else(|| from_files("region"))
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = src
            .var("AWS_ENDPOINT_URL_S3")
            .or_else(|| src.var("AWS_ENDPOINT_URL"))
            .or_else(|| from_files("endpoint_url"))
            .map(|e| e.trim_end_matches('/').to_string());
        let path_style = match src.var("AWS_S3_ADDRESSING_STYLE").as_deref() {
            Some("path") => true,
            Some("virtual") => false,
            Some("auto") | None => endpoint.is_some(),
            Some(other) => {
                return Err(invalid(
                    url,
                    format!("AWS_S3_ADDRESSING_STYLE is {other:?}, expected path, virtual or auto"),
                ))
            }
        };
        let http_anywhere = src
            .var("AWS_ALLOW_HTTP")
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let allow_http = match &endpoint {
            Some(e) => check_endpoint(url, e, http_anywhere)?,
            None => false,
        };
        Ok(S3Config {
            bucket,
            prefix,
            region,
            endpoint,
            path_style,
            allow_http,
            credentials,
            limits: Limits::default(),
        })
    }

    /// `s3://bucket/prefix`: the store's name in messages.
    pub fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

fn credentials(
    url: &str,
    src: &EnvSource,
    from_files: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials> {
    let (id, secret, token) = match (
        src.var("AWS_ACCESS_KEY_ID"),
        src.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => (id, secret, src.var("AWS_SESSION_TOKEN")),
        (Some(_), None) | (None, Some(_)) => {
            return Err(invalid(
                url,
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together",
            ))
        }
        (None, None) => match (
            from_files("aws_access_key_id"),
            from_files("aws_secret_access_key"),
        ) {
            (Some(id), Some(secret)) => (id, secret, from_files("aws_session_token")),
            _ => {
                return Err(invalid(
                    url,
                    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials",
                ))
            }
        },
    };
    Ok(Credentials {
        access_key_id: Secret::new(id),
        secret_access_key: Secret::new(secret),
        session_token: token.map(Secret::new),
    })
}

/// Checks an endpoint URL; returns whether it is plain http (allowed on a
/// loopback host, or anywhere with `AWS_ALLOW_HTTP=true`).
fn check_endpoint(location: &str, endpoint: &str, http_anywhere: bool) -> Result<bool> {
    let u = url::Url::parse(endpoint)
        .map_err(|e| invalid(location, format!("invalid endpoint URL {endpoint:?}: {e}")))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(invalid(
            location,
            "the endpoint URL must not carry credentials",
        ));
    }
    match u.scheme() {
        "https" => Ok(false),
        "http" if http_anywhere || is_loopback(&u) => Ok(true),
        "http" => Err(invalid(
            location,
            format!(
                "plain http to {} is refused (not a loopback address); use https, or set AWS_ALLOW_HTTP=true",
                u.host_str().unwrap_or("")
            ),
        )),
        other => Err(invalid(
            location,
            format!("endpoint scheme {other:?} is neither https nor http"),
        )),
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, vars: &[(&str, &str)]) -> Result<S3Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| map.get(k).cloned();
        S3Config::from_source(url, &EnvSource { env: &env })
    }

    const KEYS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ),
    ];

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        assert_eq!(parse_url("s3://bkt").unwrap(), ("bkt".into(), "".into()));
        assert_eq!(
            parse_url("s3://my.bucket-1/a/b/").unwrap(),
            ("my.bucket-1".into(), "a/b".into())
        );
        for bad in [
            "bkt/x",
            "s3://",
            "s3://Upper/x",
            "s3://ab",
            "s3://bkt/a//b",
            "s3://bkt/.x",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert_eq!(e.store_fault(), Some(StoreFault::Invalid), "{bad}");
        }
    }

    #[test]
    fn environment_variables_configure_an_s3_compatible_server() {
        let mut vars = KEYS.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:8333/"));
        vars.push(("AWS_REGION", "eu-west-3"));
        let c = config("s3://bkt/pre", &vars).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(c.region, "eu-west-3");
        assert!(c.path_style && c.allow_http);
        assert_eq!(c.location(), "s3://bkt/pre");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("wJalrXUtnFEMI") && !shown.contains("AKIDEXAMPLE"),
            "{shown}"
        );

        let c = config("s3://bkt", &KEYS).unwrap();
        assert_eq!(
            (c.endpoint, c.path_style, c.region.as_str()),
            (None, false, "us-east-1")
        );
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let mut vars = KEYS.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "http://s3.example.net:9000"));
        let e = config("s3://bkt", &vars).unwrap_err();
        assert!(e.to_string().contains("plain http"), "{e}");
        vars.push(("AWS_ALLOW_HTTP", "true"));
        assert!(config("s3://bkt", &vars).unwrap().allow_http);
        let mut vars = KEYS.to_vec();
        vars.push(("AWS_ENDPOINT_URL", "http://user:pw@127.0.0.1:9000"));
        let e = config("s3://bkt", &vars).unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
    }

    #[test]
    fn profiles_come_from_the_credentials_and_config_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(".aws")).unwrap();
        std::fs::write(
            d.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n\n\
             # a comment\n[backup]\naws_access_key_id=BAK\naws_secret_access_key=baksecret\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join(".aws/config"),
            "[default]\nregion = us-west-2\n[profile backup]\nregion = ap-south-1\nendpoint_url = https://objects.example.net\n",
        )
        .unwrap();
        let home = d.path().to_str().unwrap();
        let c = config("s3://bkt", &[("HOME", home)]).unwrap();
        assert_eq!(c.credentials.access_key_id.expose(), "DEF");
        assert_eq!(c.region, "us-west-2");
        let c = config("s3://bkt", &[("HOME", home), ("AWS_PROFILE", "backup")]).unwrap();
        assert_eq!(c.credentials.secret_access_key.expose(), "baksecret");
        assert_eq!(c.region, "ap-south-1");
        assert_eq!(c.endpoint.as_deref(), Some("https://objects.example.net"));
        assert!(c.path_style && !c.allow_http);
        // Environment variables win over the files.
        let mut vars = KEYS.to_vec();
        vars.push(("HOME", home));
        let c = config("s3://bkt", &vars).unwrap();
        assert_eq!(c.credentials.access_key_id.expose(), "AKIDEXAMPLE");
        let e = config("s3://bkt", &[("HOME", home), ("AWS_PROFILE", "nope")]).unwrap_err();
        assert!(e.to_string().contains("\"nope\" not found"), "{e}");
        let e = config("s3://bkt", &[("HOME", "/nonexistent")]).unwrap_err();
        assert!(e.to_string().contains("no AWS credentials"), "{e}");
        let e = config("s3://bkt", &[("AWS_ACCESS_KEY_ID", "X")]).unwrap_err();
        assert_eq!(e.store_fault(), Some(StoreFault::Invalid));
    }
}

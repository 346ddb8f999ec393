//! `S3Store`: libcore's `ReplicaStore` on S3-compatible object storage
//! (AWS S3, SeaweedFS, MinIO, Ceph, Garage, R2 ...), over the
//! `object_store` crate (Apache Arrow). The async runtime stays inside: a
//! private two-thread tokio runtime and `block_on` behind the synchronous
//! trait, so libcore and the tools never see tokio.
//!
//! How each promise of the trait is kept:
//!
//! * put: one PUT (S3 makes an object visible whole or not at all);
//!   put_file: a single PUT up to `Limits::part_size`, else a multipart
//!   upload, which is invisible until it completes (a failed one is
//!   aborted, and a cut one is never visible either).
//! * create: PUT with `If-None-Match: *`; replace: PUT with `If-Match:
//!   ETAG` (the version is the ETag). The server decides the race.
//! * Conditional writes are retried here, not in object_store: a request
//!   whose answer was lost may have happened, and its retry then meets its
//!   own object and gets 412. Each conditional write carries a random
//!   writer nonce in the metadata `x-amz-meta-bdbtools-writer`; after a
//!   412 that follows an attempt of unknown outcome, a HEAD tells whether
//!   the object is ours (success) or another writer's (lost the race).
//!   Other requests are idempotent and retried by object_store.
//! * Every request is bounded by `Limits` (connect, idle read and whole
//!   request timeouts, a retry count): a stalled connection costs time,
//!   never a hang.
//! * Errors are one-line `Error::Store`s (`errors`); `describe()` and
//!   `Debug` show the location and the endpoint, never a credential.
//!
//! Configuration: `config` (the AWS environment variables and files).
//! With the `testsupport` feature, `testsupport` has a SeaweedFS server
//! for tests and a fault-injecting TCP proxy.

pub mod config;
mod errors;
#[cfg(feature = "testsupport")]
pub mod testsupport;

pub use config::{Limits, S3Config};

use bytes::Bytes;
use errors::Context;
use futures_util::StreamExt;
use libcore::replica::store::{
    check_key, check_prefix, stream_file, FileSum, Object, ObjectMeta, ReplicaStore, Summer,
    SummingWriter, Version,
};
use libcore::{Error, Result, StoreFault};
use libcore::{OpenMode, Vfs};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt,
    PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion, WriteMultipart,
};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::time::Duration;

/// The metadata key of the writer nonce of conditional writes.
const NONCE_META: &str = "bdbtools-writer";

pub struct S3Store {
    rt: tokio::runtime::Runtime,
    /// For idempotent requests: object_store retries them.
    retrying: AmazonS3,
    /// For conditional writes: no retries inside object_store (see the
    /// module documentation).
    once: AmazonS3,
    prefix: String,
    location: String,
    endpoint: String,
    limits: Limits,
    /// Credential strings scrubbed from every message, just in case.
    secrets: Vec<String>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Store({} at {})", self.location, self.endpoint)
    }
}

/// A random nonce: `RandomState` is seeded from the OS for each instance.
fn nonce() -> String {
    let mut s = String::new();
    for i in 0..2u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(i ^ u64::from(std::process::id()));
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s
}

fn build(cfg: &S3Config, retries: usize) -> std::result::Result<AmazonS3, object_store::Error> {
    let l = &cfg.limits;
    let client = ClientOptions::new()
        .with_connect_timeout(l.connect_timeout)
        .with_read_timeout(l.read_timeout)
        .with_timeout(l.request_timeout)
        .with_allow_http(cfg.allow_http);
    let retry = RetryConfig {
        max_retries: retries,
        retry_timeout: l.request_timeout * (retries as u32 + 1),
        backoff: BackoffConfig {
            init_backoff: l.backoff,
            max_backoff: l.backoff * 16,
            base: 2.0,
        },
    };
    let c = &cfg.credentials;
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&cfg.bucket)
        .with_region(&cfg.region)
        .with_access_key_id(c.access_key_id.expose())
        .with_secret_access_key(c.secret_access_key.expose())
        .with_virtual_hosted_style_request(!cfg.path_style)
        .with_allow_http(cfg.allow_http)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_client_options(client)
        .with_retry(retry);
    if let Some(t) = &c.session_token {
        b = b.with_token(t.expose());
    }
    if let Some(e) = &cfg.endpoint {
        b = b.with_endpoint(e);
    }
    b.build()
}

impl S3Store {
    /// The store `url` (`s3://bucket/prefix`) configured from the AWS
    /// environment variables and files.
    pub fn from_env(url: &str) -> Result<S3Store> {
        S3Store::open(S3Config::from_env(url)?)
    }

    /// The store `cfg` describes. Makes no request: `check` does.
    pub fn open(cfg: S3Config) -> Result<S3Store> {
        let location = cfg.location();
        let endpoint = cfg
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("AWS S3 ({})", cfg.region));
        let setup = |what: String| Error::store(&location, "", StoreFault::Invalid, what);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3store")
            .enable_all()
            .build()
            .map_err(|e| setup(format!("cannot start the I/O runtime: {e}")))?;
        let retrying = build(&cfg, cfg.limits.retries)
            .map_err(|e| setup(format!("bad S3 configuration: {}", first_line(&e))))?;
        let once = build(&cfg, 0)
            .map_err(|e| setup(format!("bad S3 configuration: {}", first_line(&e))))?;
        let c = &cfg.credentials;
        let mut secrets = vec![
            c.access_key_id.expose().to_string(),
            c.secret_access_key.expose().to_string(),
        ];
        secrets.extend(c.session_token.as_ref().map(|t| t.expose().to_string()));
        Ok(S3Store {
            rt,
            retrying,
            once,
            prefix: cfg.prefix.clone(),
            location,
            endpoint,
            limits: cfg.limits.clone(),
            secrets,
        })
    }

    /// The server this store talks to (for messages).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One cheap request, so a missing bucket or refused credentials are
    /// reported at start rather than at the first write.
    pub fn check(&self) -> Result<()> {
        let prefix = self.path("");
        self.rt.block_on(async {
            let mut s = self.retrying.list(Some(&prefix));
            match s.next().await {
                Some(Err(e)) => Err(self.ctx().error("", "list", &e)),
                _ => Ok(()),
            }
        })
    }

    fn ctx(&self) -> Context<'_> {
        Context {
            location: &self.location,
            endpoint: &self.endpoint,
            secrets: &self.secrets,
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => ObjectPath::from(key),
            (false, true) => ObjectPath::from(self.prefix.as_str()),
            (false, false) => ObjectPath::from(format!("{}/{key}", self.prefix)),
        }
    }

    /// The key of an object path under the prefix.
    fn key_of(&self, p: &ObjectPath) -> Option<String> {
        let s = p.as_ref();
        if self.prefix.is_empty() {
            return Some(s.to_string());
        }
        s.strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')
            .map(str::to_string)
    }

    fn backoff(&self, attempt: usize) -> Duration {
        self.limits.backoff
            * 2u32
                .saturating_pow(attempt.saturating_sub(1) as u32)
                .min(16)
    }

    /// A conditional PUT (create or replace) with its own retries; see the
    /// module documentation for how a lost answer is resolved.
    fn conditional_put(&self, op: &str, key: &str, bytes: &[u8], mode: PutMode) -> Result<bool> {
        let path = self.path(key);
        let me = nonce();
        let payload = Bytes::copy_from_slice(bytes);
        let mut outcome_unknown = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::Metadata(NONCE_META.into()), me.clone().into());
            let opts = PutOptions {
                mode: mode.clone(),
                attributes,
                ..PutOptions::default()
            };
            let r = self.rt.block_on(self.once.put_opts(
                &path,
                PutPayload::from_bytes(payload.clone()),
                opts,
            ));
            let e = match r {
                Ok(_) => return Ok(true),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {
                    return match outcome_unknown {
                        true => self.written_by(key, &path, &me),
                        false => Ok(false),
                    };
                }
                Err(e) => e,
            };
            let err = self.ctx().error(key, op, &e);
            outcome_unknown |= !errors::never_sent(&e);
            if !err.is_transient() || attempt >= self.limits.conditional_attempts {
                // An attempt of unknown outcome may have written the object.
                if outcome_unknown && matches!(self.written_by(key, &path, &me), Ok(true)) {
                    return Ok(true);
                }
                return Err(err);
            }
            std::thread::sleep(self.backoff(attempt));
        }
    }

    /// True if the object at `path` was written by the conditional write
    /// with nonce `me`.
    fn written_by(&self, key: &str, path: &ObjectPath, me: &str) -> Result<bool> {
        let opts = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.rt.block_on(self.retrying.get_opts(path, opts)) {
            Ok(r) => {
                let tag = r.attributes.get(&Attribute::Metadata(NONCE_META.into()));
                Ok(tag.is_some_and(|v| v.as_ref() == me))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.ctx().error(key, "head", &e)),
        }
    }

    fn put_single(&self, key: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(key);
        self.rt
            .block_on(self.retrying.put(&path, PutPayload::from_bytes(bytes)))
            .map(|_| ())
            .map_err(|e| self.ctx().error(key, "put", &e))
    }

    /// Uploads the file in parts; the object appears only when the upload
    /// completes. A failed upload is aborted (best effort). Memory stays
    /// bounded: at most `part_concurrency` parts are in flight.
    fn put_multipart(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<FileSum> {
        let opath = self.path(key);
        let src = vfs.open(path, OpenMode::Read)?;
        let mut buf = vec![0u8; self.limits.part_size];
        let mut summer = Summer::new();
        self.rt.block_on(async {
            let upload = self
                .retrying
                .put_multipart(&opath)
                .await
                .map_err(|e| self.ctx().error(key, "start multipart upload", &e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, self.limits.part_size);
            let sent: Result<()> = async {
                loop {
                    // The source is read on this thread (block_on's), parts
                    // upload on the runtime's.
                    let n = src.read_at(&mut buf, summer.sum().size)?;
                    if n == 0 {
                        return Ok(());
                    }
                    summer.update(&buf[..n]);
                    w.wait_for_capacity(self.limits.part_concurrency)
                        .await
                        .map_err(|e| self.ctx().error(key, "upload part", &e))?;
                    w.write(&buf[..n]);
                }
            }
            .await;
            if let Err(e) = sent {
                let _ = w.abort().await;
                return Err(e);
            }
            match w.finish().await {
                Ok(_) => Ok(summer.sum()),
                // A completion whose answer was lost is retried and then
                // finds no upload: not a missing bucket, and worth a retry.
                Err(e @ object_store::Error::NotFound { .. }) if !errors::is_missing_bucket(&e) => {
                    Err(Error::store(
                        &self.location,
                        key,
                        StoreFault::Transient,
                        "complete multipart upload: the server no longer knows the upload (a lost answer?); retry",
                    ))
                }
                Err(e) => Err(self.ctx().error(key, "complete multipart upload", &e)),
            }
        })
    }
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}

impl ReplicaStore for S3Store {
    fn describe(&self) -> String {
        self.location.clone()
    }

    fn get(&self, key: &str) -> Result<Option<Object>> {
        check_key(&self.location, key)?;
        let path = self.path(key);
        self.rt.block_on(async {
            let r = match self.retrying.get(&path).await {
                Ok(r) => r,
                Err(e @ object_store::Error::NotFound { .. }) if !errors::is_missing_bucket(&e) => {
                    return Ok(None)
                }
                Err(e) => return Err(self.ctx().error(key, "get", &e)),
            };
            let size = r.meta.size;
            let version = r.meta.e_tag.clone().ok_or_else(|| {
                Error::store(
                    &self.location,
                    key,
                    StoreFault::Failed,
                    "get: the server sent no ETag",
                )
            })?;
            let bytes = r
                .bytes()
                .await
                .map_err(|e| self.ctx().error(key, "get", &e))?;
            if bytes.len() as u64 != size {
                return Err(Error::store(
                    &self.location,
                    key,
                    StoreFault::Transient,
                    format!("get: {} of {size} bytes arrived", bytes.len()),
                ));
            }
            Ok(Some(Object {
                bytes: bytes.to_vec(),
                version: Version::new(version),
            }))
        })
    }

    fn get_to_file(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<Option<FileSum>> {
        check_key(&self.location, key)?;
        let opath = self.path(key);
        self.rt.block_on(async {
            let r = match self.retrying.get(&opath).await {
                Ok(r) => r,
                Err(e @ object_store::Error::NotFound { .. }) if !errors::is_missing_bucket(&e) => {
                    return Ok(None)
                }
                Err(e) => return Err(self.ctx().error(key, "get", &e)),
            };
            let size = r.meta.size;
            let mut out = SummingWriter::create(vfs, path)?;
            let mut stream = r.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.ctx().error(key, "get", &e))?;
                out.write(&chunk)?;
            }
            let sum = out.finish()?;
            if sum.size != size {
                return Err(Error::store(
                    &self.location,
                    key,
                    StoreFault::Transient,
                    format!("get: {} of {size} bytes arrived", sum.size),
                ));
            }
            Ok(Some(sum))
        })
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        check_key(&self.location, key)?;
        self.put_single(key, Bytes::copy_from_slice(bytes))
    }

    fn put_file(&self, key: &str, vfs: &dyn Vfs, path: &Path) -> Result<FileSum> {
        check_key(&self.location, key)?;
        let len = vfs.open(path, OpenMode::Read)?.len()?;
        if len > self.limits.part_size as u64 {
            return self.put_multipart(key, vfs, path);
        }
        let mut data = Vec::with_capacity(len as usize);
        let mut summer = Summer::new();
        stream_file(vfs, path, self.limits.part_size, |chunk| {
            summer.update(chunk);
            data.extend_from_slice(chunk);
            Ok(())
        })?;
        self.put_single(key, Bytes::from(data))?;
        Ok(summer.sum())
    }

    fn create(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        check_key(&self.location, key)?;
        self.conditional_put("create", key, bytes, PutMode::Create)
    }

    fn replace(&self, key: &str, bytes: &[u8], expected: &Version) -> Result<bool> {
        check_key(&self.location, key)?;
        let mode = PutMode::Update(UpdateVersion {
            e_tag: Some(expected.as_str().to_string()),
            version: None,
        });
        self.conditional_put("replace", key, bytes, mode)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        check_prefix(&self.location, prefix)?;
        let path = self.path(prefix);
        let listed: Vec<object_store::ObjectMeta> = self.rt.block_on(async {
            let mut out = Vec::new();
            let mut s = self.retrying.list(Some(&path));
            while let Some(m) = s.next().await {
                out.push(m.map_err(|e| self.ctx().error(prefix, "list", &e))?);
            }
            Ok::<_, Error>(out)
        })?;
        let mut out: Vec<ObjectMeta> = listed
            .iter()
            .filter_map(|m| {
                let key = self.key_of(&m.location)?;
                let hidden = key.split('/').any(|p| p.starts_with('.'));
                (!hidden).then_some(ObjectMeta { key, size: m.size })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        check_key(&self.location, key)?;
        let path = self.path(key);
        match self.rt.block_on(self.retrying.delete(&path)) {
            Ok(()) => Ok(()),
            Err(e @ object_store::Error::NotFound { .. }) if !errors::is_missing_bucket(&e) => {
                Ok(())
            }
            Err(e) => Err(self.ctx().error(key, "delete", &e)),
        }
    }
}

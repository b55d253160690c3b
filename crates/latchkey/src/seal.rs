//! Keys at rest (SPEC 4): the master key, which never enters the database, and the AEAD (XChaCha20-Poly1305) that
//! seals the ID-token private keys and the server's hashing key under it before they are stored.
//!
//! A sealed value is `MAGIC (4) | master-key id (8) | nonce (24) | ciphertext | tag (16)`. The associated data is
//! that header followed by the row the value belongs to (`signing_keys/<kid>`, `server_secrets/<name>`), so a value
//! copied into another row does not open. The key id (a truncated hash of the key) says which master key sealed a
//! value, so a node given the wrong key can say so instead of failing obscurely.

use crate::config::Config;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The first bytes of every sealed value (format version 1). Neither a DER key (`0x30 …`) nor a 32-byte hash key
/// (too short) can be mistaken for one.
const MAGIC: &[u8; 4] = b"lks\x01";
const ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + ID_LEN + NONCE_LEN;

/// The file name of the master key in the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Which master key sealed a value: the first 8 bytes of SHA-256 over a label and the key. Shown in messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KeyId([u8; ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The row a sealed value belongs to: part of the associated data.
#[derive(Clone, Copy, Debug)]
pub enum Row<'a> {
    SigningKey(&'a str),
    ServerSecret(&'a str),
    /// A queued mail (it may carry a code), by its id.
    Mail(&'a str),
}

impl Row<'_> {
    fn label(&self) -> Vec<u8> {
        match self {
            Row::SigningKey(kid) => format!("signing_keys/{kid}").into_bytes(),
            Row::ServerSecret(name) => format!("server_secrets/{name}").into_bytes(),
            Row::Mail(id) => format!("mail_queue/{id}").into_bytes(),
        }
    }
}

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Row::SigningKey(kid) => write!(f, "signing key {kid}"),
            Row::ServerSecret(name) => write!(f, "server secret {name}"),
            Row::Mail(id) => write!(f, "queued mail {id}"),
        }
    }
}

/// Why a stored value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// It is not in the sealed format at all (a row written before keys were sealed).
    #[error("it is not sealed")]
    NotSealed,
    /// Another master key sealed it.
    #[error("it is sealed under master key {0}")]
    OtherKey(KeyId),
    /// It names this master key but does not authenticate: altered, or copied from another row.
    #[error("it was altered or belongs to another row")]
    Damaged,
}

/// Where the master key in force came from (for messages; never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `LATCHKEY_MASTER_KEY` (or `master_key` in the file).
    Setting,
    /// A file: `master_key_file`, or `<data_dir>/master.key`.
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Setting => f.write_str("LATCHKEY_MASTER_KEY"),
            KeySource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The 32-byte key that seals every key Latchkey stores. `Debug` never prints it; it is wiped when dropped.
#[derive(Clone)]
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    id: KeyId,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        let mut hash = Sha256::new();
        hash.update(b"latchkey master key id\0");
        hash.update(bytes);
        let digest = hash.finalize();
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&digest[..ID_LEN]);
        MasterKey {
            key: Zeroizing::new(bytes),
            id: KeyId(id),
        }
    }

    /// A new random key.
    pub fn generate() -> MasterKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut bytes[..]);
        MasterKey::from_bytes(*bytes)
    }

    /// Reads the text form: standard base64 of exactly 32 bytes (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<MasterKey, String> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| "is not base64 (expected base64 of 32 random bytes)".to_owned())?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "is {} bytes long, not 32 (expected base64 of 32 random bytes)",
                bytes.len()
            )
        })?;
        Ok(MasterKey::from_bytes(key))
    }

    /// The text form [`MasterKey::parse`] reads: what `master.key` holds and `LATCHKEY_MASTER_KEY` takes.
    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.key[..]))
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.key).into())
    }

    /// Seals `plaintext` for `row` under a fresh random nonce.
    pub fn seal(&self, row: Row<'_>, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id.0);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        let aad = [out.as_slice(), &row.label()].concat();
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| "cannot seal the value".to_owned())?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value [`MasterKey::seal`] made for the same `row` under this key.
    pub fn open(&self, row: Row<'_>, stored: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let sealer = sealed_by(stored).ok_or(OpenError::NotSealed)?;
        if sealer != self.id {
            return Err(OpenError::OtherKey(sealer));
        }
        let (header, body) = stored.split_at(HEADER_LEN);
        let nonce = &header[MAGIC.len() + ID_LEN..];
        let aad = [header, &row.label()].concat();
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Damaged)
    }

    /// The key in force (SPEC 5): `master_key` (`LATCHKEY_MASTER_KEY`), else the file `master_key_file` (which must
    /// exist), else `<data_dir>/master.key`, created with a new random key if there is none.
    pub fn load(config: &Config) -> Result<(MasterKey, KeySource), String> {
        if let Some(found) = MasterKey::load_existing(config)? {
            return Ok(found);
        }
        let path = default_key_file(config);
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
        let key = read_or_create_key_file(&path)?;
        Ok((key, KeySource::File(path)))
    }

    /// The key in force, like [`MasterKey::load`], but creating nothing (for diagnostics): `Ok(None)` if it would
    /// come from `<data_dir>/master.key` and there is no such file yet.
    pub fn load_existing(config: &Config) -> Result<Option<(MasterKey, KeySource)>, String> {
        if let Some(text) = &config.master_key {
            let key = MasterKey::parse(text.expose())
                .map_err(|e| format!("the master key in LATCHKEY_MASTER_KEY {e}"))?;
            return Ok(Some((key, KeySource::Setting)));
        }
        if let Some(path) = &config.master_key_file {
            let key = read_key_file(path)?;
            return Ok(Some((key, KeySource::File(path.clone()))));
        }
        let path = default_key_file(config);
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some((read_key_file(&path)?, KeySource::File(path))))
    }
}

/// Where the master key is kept when neither `master_key` nor `master_key_file` is set.
pub fn default_key_file(config: &Config) -> PathBuf {
    config.data_dir.join(MASTER_KEY_FILE)
}

/// Which master key sealed `stored`, or `None` if it is not a sealed value.
pub fn sealed_by(stored: &[u8]) -> Option<KeyId> {
    if stored.len() < HEADER_LEN + TAG_LEN || !stored.starts_with(MAGIC) {
        return None;
    }
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&stored[MAGIC.len()..MAGIC.len() + ID_LEN]);
    Some(KeyId(id))
}

/// Reads a key file that must exist.
pub fn read_key_file(path: &Path) -> Result<MasterKey, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the master key file {}: {e}", path.display()))?,
    );
    warn_if_readable_by_others(path);
    MasterKey::parse(&text).map_err(|e| format!("the master key file {} {e}", path.display()))
}

/// Reads the key file at `path`, or, if there is none, creates it with a new random key (mode 0600). Creation is
/// atomic: the key is written to a temporary file and linked into place only if `path` is still absent, so
/// processes starting at once all end up reading the one key that won.
pub fn read_or_create_key_file(path: &Path) -> Result<MasterKey, String> {
    if !path.exists() {
        let fresh = MasterKey::generate();
        let tmp = path.with_file_name(format!(
            ".{}.{}.tmp",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            latchkey_core::ids::new_internal_id(&mut rand::thread_rng())
        ));
        let written =
            write_private(&tmp, fresh.encode().as_bytes()).and_then(|()| match std::fs::hard_link(
                &tmp, path,
            ) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            });
        let _ = std::fs::remove_file(&tmp);
        written
            .map_err(|e| format!("cannot create the master key file {}: {e}", path.display()))?;
    }
    read_key_file(path)
}

/// Keeps the key file at `current` as `<current>.old` (or `.old.1`, `.old.2`, … if that exists: an earlier key
/// file is never overwritten), mode 0600, before a new key replaces it. The kept file is a hard link, made only if
/// its name is free. Returns its path.
pub fn keep_old_key_file(current: &Path) -> Result<PathBuf, String> {
    let name = current
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for n in 0..100 {
        let kept = if n == 0 {
            current.with_file_name(format!("{name}.old"))
        } else {
            current.with_file_name(format!("{name}.old.{n}"))
        };
        match std::fs::hard_link(current, &kept) {
            Ok(()) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| {
                            format!("cannot make {} private (chmod 600): {e}", kept.display())
                        })?;
                }
                return Ok(kept);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot keep the old master key as {}: {e}",
                    kept.display()
                ))
            }
        }
    }
    Err(format!(
        "cannot keep the old master key: {name}.old through {name}.old.99 all exist beside {}",
        current.display()
    ))
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the master key file is readable by other users: chmod 600 it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; 32])
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_row() {
        let k = key(1);
        let sealed = k.seal(Row::SigningKey("es256-a"), b"private").unwrap();
        assert_eq!(
            k.open(Row::SigningKey("es256-a"), &sealed)
                .unwrap()
                .as_slice(),
            b"private"
        );
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        assert_eq!(sealed_by(&sealed), Some(k.id()));
        // A fresh nonce every time.
        assert_ne!(
            sealed,
            k.seal(Row::SigningKey("es256-a"), b"private").unwrap()
        );
    }

    #[test]
    fn another_master_key_is_named_not_used() {
        let sealed = key(1).seal(Row::ServerSecret("h"), b"secret").unwrap();
        assert_eq!(
            key(2).open(Row::ServerSecret("h"), &sealed),
            Err(OpenError::OtherKey(key(1).id()))
        );
        assert_ne!(key(1).id(), key(2).id());
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let k = key(3);
        let sealed = k.seal(Row::ServerSecret("h"), &[7u8; 32]).unwrap();
        for i in MAGIC.len() + ID_LEN..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                k.open(Row::ServerSecret("h"), &bad),
                Err(OpenError::Damaged),
                "byte {i}"
            );
        }
        assert_eq!(
            k.open(Row::ServerSecret("h"), &sealed[..sealed.len() - 1]),
            Err(OpenError::Damaged)
        );
    }

    #[test]
    fn a_value_moved_to_another_row_does_not_open() {
        let k = key(4);
        let sealed = k.seal(Row::SigningKey("es256-a"), b"private").unwrap();
        assert_eq!(
            k.open(Row::SigningKey("es256-b"), &sealed),
            Err(OpenError::Damaged)
        );
        assert_eq!(
            k.open(Row::ServerSecret("es256-a"), &sealed),
            Err(OpenError::Damaged)
        );
    }

    #[test]
    fn plaintext_rows_are_recognised_as_not_sealed() {
        let k = key(5);
        // A DER key starts with 0x30; a 32-byte hash key is shorter than any sealed value.
        let der = crate::keys::generate(latchkey_core::oidc::SigningAlg::Es256).unwrap();
        assert_eq!(
            k.open(Row::SigningKey("k"), &der),
            Err(OpenError::NotSealed)
        );
        let mut hash_key = [0u8; 32];
        hash_key[..4].copy_from_slice(MAGIC);
        assert_eq!(
            k.open(Row::ServerSecret("h"), &hash_key),
            Err(OpenError::NotSealed)
        );
    }

    #[test]
    fn the_text_form_is_base64_of_32_bytes() {
        let k = MasterKey::generate();
        let again = MasterKey::parse(&format!("  {}\n", k.encode().as_str())).unwrap();
        assert_eq!(again.id(), k.id());
        assert!(MasterKey::parse("not base64!")
            .unwrap_err()
            .contains("base64"));
        assert!(MasterKey::parse(&STANDARD.encode([1u8; 16]))
            .unwrap_err()
            .contains("16 bytes"));
        assert!(!format!("{k:?}").contains(k.encode().as_str()));
    }

    #[test]
    fn the_key_file_is_created_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        let first = read_or_create_key_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(read_or_create_key_file(&path).unwrap().id(), first.id());
        // Only the key file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Many racing creators end with one key.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        let ids: Vec<KeyId> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| read_or_create_key_file(&path).unwrap().id()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        std::fs::write(&path, "short").unwrap();
        assert!(read_or_create_key_file(&path)
            .unwrap_err()
            .contains("base64"));
    }
}

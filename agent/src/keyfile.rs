//! The node's WireGuard static key on disk: base64 of the 32-byte private
//! key, the format of `wg genkey`, in a file of mode 0600.
//!
//! A missing file is generated and saved atomically (write a 0600 temporary
//! file in the same directory, fsync, rename), so a crash never leaves a
//! half-written key and a restart keeps the node's identity. A file that
//! other users can read is refused, as `wg` warns about and ssh refuses.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pisek_overlay::wg::{PublicKey, StaticSecret};

/// Reads the private key from `path`.
pub fn load(path: &Path) -> anyhow::Result<StaticSecret> {
    let meta = fs::metadata(path).with_context(|| format!("key file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "key file {} has mode {mode:04o}; it must not be readable by group or others (chmod 600)",
            path.display()
        );
    }
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_private_key(text.trim())
        .with_context(|| format!("key file {} holds no valid key", path.display()))
}

/// Reads the private key from `path`, or generates one and saves it there
/// (mode 0600) when the file does not exist.
pub fn load_or_generate(path: &Path) -> anyhow::Result<StaticSecret> {
    if path.exists() {
        return load(path);
    }
    let secret = generate()?;
    save(path, &secret)?;
    Ok(secret)
}

/// Writes `secret` to `path` atomically with mode 0600.
pub fn save(path: &Path, secret: &StaticSecret) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        writeln!(f, "{}", STANDARD.encode(secret.to_bytes()))?;
        f.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        // The rename is durable once the directory is synced.
        File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A new random private key (from the kernel's CSPRNG).
pub fn generate() -> anyhow::Result<StaticSecret> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    // StaticSecret clamps the scalar itself (RFC 7748 §5).
    Ok(StaticSecret::from(bytes))
}

/// Parses a base64 private key as `wg genkey` prints it.
pub fn parse_private_key(text: &str) -> anyhow::Result<StaticSecret> {
    Ok(StaticSecret::from(decode_key(text)?))
}

/// Parses a base64 public key as `wg pubkey` prints it.
pub fn parse_public_key(text: &str) -> anyhow::Result<PublicKey> {
    Ok(PublicKey::from(decode_key(text)?))
}

/// A key in the base64 form `wg` uses.
pub fn encode_key(bytes: &[u8; 32]) -> String {
    STANDARD.encode(bytes)
}

fn decode_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = STANDARD
        .decode(text.trim())
        .context("key is not valid base64")?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| anyhow::anyhow!("key is {} bytes, not 32", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pisek-keyfile-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_generated_key_is_saved_0600_and_loaded_back_the_same() {
        let dir = temp_dir("gen");
        let path = dir.join("wg.key");
        let first = load_or_generate(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_generate(&path).unwrap();
        assert_eq!(first.to_bytes(), again.to_bytes());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary left");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = temp_dir("mode");
        let path = dir.join("wg.key");
        save(&path, &generate().unwrap()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = match load(&path) {
            Ok(_) => panic!("a 0644 key file was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("chmod 600"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keys_in_wg_format_parse_and_garbage_does_not() {
        // A key pair as `wg genkey | tee k | wg pubkey` printed it.
        let private = parse_private_key("wNGUr5mhH3EuNLDsPEvJN3/EEIrVnwG7+vJ8YbTe+Fs=").unwrap();
        let public = PublicKey::from(&private);
        assert_eq!(
            encode_key(public.as_bytes()),
            "WTbY7pZbdCXcx8jrfdEhGAWTklvUCGZfEeOtvaYvhi0="
        );
        assert!(parse_public_key("not base64!").is_err());
        assert!(parse_public_key("AAAA").is_err());
    }
}

//! OSDP Secure Channel key files: read one into a zeroized [`Scbk`], write one (mode 0600) after a
//! simulated door's osdp_KEYSET. The key never appears in an error.

use std::path::Path;

use super::error::{ConfigError, Problem};
use super::secret::read_scbk_file;
use crate::osdp::sc::Scbk;

/// Read a key file (32 hex characters, mode 0600; see [`read_scbk_file`]) into a key.
pub(crate) fn read_scbk(path: &Path) -> Result<Scbk, ConfigError> {
    let secret = read_scbk_file(path)?;
    Scbk::from_slice(secret.expose()).ok_or_else(|| {
        ConfigError::new(
            "",
            Problem::BadFile {
                path: path.to_path_buf(),
                reason: "an SCBK must be 16 bytes".into(),
            },
        )
    })
}

/// Write `scbk` as 32 hex characters and a newline, mode 0600, replacing `path` atomically (a temp
/// file beside it, fsync, rename) so a crash leaves the old key or the new one, never half of one.
#[cfg(any(test, feature = "sim"))]
pub(crate) fn write_scbk_file(path: &Path, scbk: &Scbk) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    use zeroize::Zeroizing;

    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut text = Zeroizing::new(hex::encode_upper(scbk.bytes()));
    text.push('\n');
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn test_write_then_read_back_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("door.scbk");
        let key = Scbk::new([0x5A; 16]);
        write_scbk_file(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_scbk(&path).unwrap(), key);
        // Overwrite with another key: still 0600, new content.
        let other = Scbk::new([0x11; 16]);
        write_scbk_file(&path, &other).unwrap();
        assert_eq!(read_scbk(&path).unwrap(), other);
    }
}

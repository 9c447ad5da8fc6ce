//! Small persistent key/value documents: bdseq, the idempotency cache, the
//! config record. [`FileStore`] keeps one file per key in the state
//! directory, each replaced with [`write_atomically`]; [`MemStore`] serves
//! tests and the simulator.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Writes `bytes` to `path` so that a reader, a crash or a power cut sees
/// either the old or the new content: write a temporary file beside it,
/// fsync it, rename it over `path`, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // A directory fsync makes the rename itself durable.
    std::fs::File::open(dir)?.sync_all()
}

/// Persistence used by the sans-IO session. Keys are short ASCII names.
pub trait Store: Send {
    /// The stored bytes, or `None` if the key was never saved.
    fn load(&self, key: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Replaces the value durably.
    fn save(&mut self, key: &str, bytes: &[u8]) -> std::io::Result<()>;
}

/// One file per key (`<dir>/<key>.json`), written atomically.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Uses (and creates) `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<FileStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(FileStore { dir })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }
}

impl Store for FileStore {
    fn load(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save(&mut self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.path(key), bytes)
    }
}

/// In-memory store; clones share the contents (to simulate a restart).
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    map: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl Store for MemStore {
    fn load(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        let map = self.map.lock().map_err(|_| std::io::Error::other("store lock poisoned"))?;
        Ok(map.get(key).cloned())
    }

    fn save(&mut self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut map = self.map.lock().map_err(|_| std::io::Error::other("store lock poisoned"))?;
        map.insert(key.to_owned(), bytes.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomically_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }

    #[test]
    fn file_store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::new(dir.path().join("state")).unwrap();
        assert_eq!(s.load("bdseq").unwrap(), None);
        s.save("bdseq", b"41").unwrap();
        let s2 = FileStore::new(dir.path().join("state")).unwrap();
        assert_eq!(s2.load("bdseq").unwrap().as_deref(), Some(&b"41"[..]));
    }
}

//! The redo log of [`crate::EmbeddedCatalogue`]: the commit point of every write.
//!
//! # Why a log in front of redb
//! A durable redb commit writes every B-tree page the transaction touched (a store touches five tables, about
//! 18 pages) and its checksums, then `fdatasync`s the file: most of the CPU a small store cost. Here each batch
//! of requests is committed to redb without durability (`Durability::None`: the pages stay in redb's memory
//! and are visible to readers) *after* its table mutations were appended to this log and `fdatasync`ed: one
//! write of the bytes that changed and one flush. A checkpoint (a durable redb commit, each second or when the
//! log is large) makes everything before it durable in redb, after which the log is rewound.
//!
//! # Format
//! A 16-byte header, `DWCLOG01` and a salt, then records, each `[payload length: u32 LE][CRC-32 of salt, lsn
//! and payload: u32 LE][lsn: u64 LE][payload]`; the payload is the batch's operations ([`Op`]), each
//! `[tag][table][key][value]` with strings and byte strings as `[length: u32 LE][bytes]` and integers as
//! `u64 LE` (written by hand: a fixed layout of five cases that borrows from the input, where a serde format
//! would copy every byte string).
//!
//! # Recovery
//! Records are read from the start while each is whole (length within the file, checksum right) and its lsn is
//! the previous one plus one; the first that is not marks the end. Bytes after it are a torn append (never
//! acknowledged: its `fdatasync` did not return) or what a cycle before the last rewind left. A rewind draws a
//! new salt and flushes the header before anything is appended over the old records, so those (and any bytes
//! a client chose, such as a file's copy, that happen to look like a record) never check out under it. The
//! caller replays the records after the lsn redb holds durably.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Size of a record header: payload length, checksum, lsn.
const HEADER_LEN: usize = 16;

/// The file's first bytes; the salt follows.
const MAGIC: &[u8; 8] = b"DWCLOG01";

/// Size of the file header: magic and salt. Records start here.
const FILE_HEADER_LEN: u64 = 16;

/// The file grows by this much at a time, in written zeros (and one flush), so that an append overwrites
/// blocks already allocated and its `fdatasync` has no file size or block map to write, only the data.
const GROWTH: u64 = 4 << 20;

/// Largest payload read back: a batch is at most 1000 requests, each with a copy of at most a few hundred KiB.
const MAX_PAYLOAD_LEN: u32 = 1 << 30;

/// The log file, written by the catalogue's writer thread only.
pub(crate) struct RedoLog {
    file: File,
    /// Mixed into every record's checksum; new at each rewind.
    salt: u64,
    /// Where the next record is written.
    end: u64,
    /// The file's size: blocks written before (zeros, or records of earlier cycles).
    capacity: u64,
    /// A flush failed: what the kernel kept of the unflushed pages is unknown, so nothing more is written.
    broken: bool,
}

/// One whole record read back.
pub(crate) struct Record {
    pub lsn: u64,
    pub payload: Vec<u8>,
}

impl RedoLog {
    /// Opens (creating if missing) the log at `path` and reads back its valid prefix of consecutive records.
    /// Appends continue after them; the caller makes them durable elsewhere and [`RedoLog::rewind`]s.
    pub(crate) fn open(path: &Path) -> io::Result<(RedoLog, Vec<Record>)> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut header = [0u8; FILE_HEADER_LEN as usize];
        let salt = match file.read_exact_at(&mut header, 0) {
            Ok(()) if &header[..8] == MAGIC => {
                u64::from_le_bytes(header[8..].try_into().expect("8 bytes"))
            }
            // New, or cut before its header was flushed (then it never held a record).
            _ => {
                let salt = write_header(&file)?;
                file.sync_data()?;
                if let Some(parent) = path.parent() {
                    // The log's directory entry must survive a power cut before it holds records.
                    File::open(parent)?.sync_all()?;
                }
                salt
            }
        };
        let (records, end) = read_records(&mut file, salt)?;
        let capacity = file.metadata()?.len();
        Ok((
            RedoLog {
                file,
                salt,
                end,
                capacity,
                broken: false,
            },
            records,
        ))
    }

    /// Appends one record and flushes it (`fdatasync`): once this returns, the record survives a crash or a
    /// power cut. On error the record does not count: the next append overwrites it, unless the flush
    /// failed, after which the log is [broken](RedoLog::is_broken) and refuses every append.
    pub(crate) fn append(&mut self, lsn: u64, payload: &[u8]) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("an earlier flush of the log failed"));
        }
        let length = u32::try_from(payload.len())
            .ok()
            .filter(|length| *length <= MAX_PAYLOAD_LEN)
            .ok_or_else(|| io::Error::other("a catalogue batch over 1 GiB"))?;
        let mut record = Vec::with_capacity(HEADER_LEN + payload.len());
        record.extend_from_slice(&length.to_le_bytes());
        record.extend_from_slice(&checksum(self.salt, lsn, payload).to_le_bytes());
        record.extend_from_slice(&lsn.to_le_bytes());
        record.extend_from_slice(payload);
        self.grow_to(self.end + record.len() as u64)?;
        self.file.write_all_at(&record, self.end)?;
        self.flush()?;
        self.end += record.len() as u64;
        Ok(())
    }

    /// Makes the file at least `size` bytes long, in steps of [`GROWTH`] written zeros, flushed.
    fn grow_to(&mut self, size: u64) -> io::Result<()> {
        if size <= self.capacity {
            return Ok(());
        }
        let target = size.div_ceil(GROWTH) * GROWTH;
        let zeros = vec![0u8; 1 << 20];
        let mut at = self.capacity;
        while at < target {
            let n = (target - at).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        self.flush()?;
        self.capacity = target;
        Ok(())
    }

    /// `fdatasync`; a failure breaks the log for good (see [`RedoLog::append`]).
    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data().inspect_err(|_| self.broken = true)
    }

    /// Whether a flush failed (see [`RedoLog::append`]).
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Forgets what was appended after `len` bytes (as counted by [`RedoLog::len`]): the next append
    /// overwrites it. For a batch logged but then not committed.
    pub(crate) fn truncate_to(&mut self, len: u64) {
        self.end = self.end.min(FILE_HEADER_LEN + len);
    }

    /// Bytes appended since the last rewind.
    pub(crate) fn len(&self) -> u64 {
        self.end - FILE_HEADER_LEN
    }

    /// Starts the log again from its beginning, once everything in it is durable elsewhere: a new salt is
    /// written and flushed first, so nothing appended before counts any more. The file keeps its size, so
    /// later appends overwrite blocks already allocated (an `fdatasync` then has no file size or block map
    /// to flush).
    pub(crate) fn rewind(&mut self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("an earlier flush of the log failed"));
        }
        // A header half written is as unknown as one not flushed: either breaks the log.
        self.salt = write_header(&self.file).inspect_err(|_| self.broken = true)?;
        self.flush()?;
        self.end = FILE_HEADER_LEN;
        Ok(())
    }
}

/// Writes the file header with a new random salt (not flushed); returns the salt.
fn write_header(file: &File) -> io::Result<u64> {
    // std's per-process random hasher keys: unpredictable to a client, no dependency for one number.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    let salt = hasher.finish();
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&salt.to_le_bytes());
    file.write_all_at(&header, 0)?;
    Ok(salt)
}

fn checksum(salt: u64, lsn: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&salt.to_le_bytes());
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The valid prefix of consecutive records (see the module documentation), and where it ends.
fn read_records(file: &mut File, salt: u64) -> io::Result<(Vec<Record>, u64)> {
    let size = file.metadata()?.len();
    let mut reader = io::BufReader::with_capacity(1 << 20, &*file);
    io::Seek::seek(&mut reader, io::SeekFrom::Start(FILE_HEADER_LEN))?;
    let mut records: Vec<Record> = Vec::new();
    let mut offset = FILE_HEADER_LEN;
    loop {
        let mut header = [0u8; HEADER_LEN];
        if offset + HEADER_LEN as u64 > size || reader.read_exact(&mut header).is_err() {
            break;
        }
        let length = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let expected = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let lsn = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let end = offset + HEADER_LEN as u64 + u64::from(length);
        if length > MAX_PAYLOAD_LEN || end > size {
            break;
        }
        if records.last().is_some_and(|last| last.lsn + 1 != lsn) {
            break;
        }
        let mut payload = vec![0u8; length as usize];
        if reader.read_exact(&mut payload).is_err() || checksum(salt, lsn, &payload) != expected {
            break;
        }
        records.push(Record { lsn, payload });
        offset = end;
    }
    Ok((records, offset))
}

/// The tables a logged operation names. The numbers are the log's format: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Paths = 1,
    Sops = 2,
    Versions = 3,
    Changes = 4,
    PendingDeletions = 5,
    Copies = 6,
    Meta = 7,
}

impl Table {
    fn from_byte(byte: u8) -> Option<Table> {
        Some(match byte {
            1 => Table::Paths,
            2 => Table::Sops,
            3 => Table::Versions,
            4 => Table::Changes,
            5 => Table::PendingDeletions,
            6 => Table::Copies,
            7 => Table::Meta,
            _ => return None,
        })
    }
}

/// One table mutation, as logged and replayed. Keys and values borrow from the payload they were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    /// Insert into a table keyed by string with `u64` values (`paths`, `pending_deletions`, `meta`).
    PutStrU64(Table, &'a str, u64),
    /// Insert into a table keyed by string with byte-string values (`sops`, `copies`).
    PutStrBytes(Table, &'a str, &'a [u8]),
    /// Insert into a table keyed by `u64` (`versions`, `changes`).
    PutU64Bytes(Table, u64, &'a [u8]),
    /// Remove a string key (any table keyed by string).
    RemoveStr(Table, &'a str),
    /// Remove a `u64` key.
    RemoveU64(Table, u64),
}

const PUT_STR_U64: u8 = 1;
const PUT_STR_BYTES: u8 = 2;
const PUT_U64_BYTES: u8 = 3;
const REMOVE_STR: u8 = 4;
const REMOVE_U64: u8 = 5;

impl Op<'_> {
    /// Appends the operation's encoding to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        fn bytes(out: &mut Vec<u8>, value: &[u8]) {
            // Keys and values are far below 4 GiB: a batch is bounded by MAX_PAYLOAD_LEN when appended.
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
        match *self {
            Op::PutStrU64(table, key, value) => {
                out.extend_from_slice(&[PUT_STR_U64, table as u8]);
                bytes(out, key.as_bytes());
                out.extend_from_slice(&value.to_le_bytes());
            }
            Op::PutStrBytes(table, key, value) => {
                out.extend_from_slice(&[PUT_STR_BYTES, table as u8]);
                bytes(out, key.as_bytes());
                bytes(out, value);
            }
            Op::PutU64Bytes(table, key, value) => {
                out.extend_from_slice(&[PUT_U64_BYTES, table as u8]);
                out.extend_from_slice(&key.to_le_bytes());
                bytes(out, value);
            }
            Op::RemoveStr(table, key) => {
                out.extend_from_slice(&[REMOVE_STR, table as u8]);
                bytes(out, key.as_bytes());
            }
            Op::RemoveU64(table, key) => {
                out.extend_from_slice(&[REMOVE_U64, table as u8]);
                out.extend_from_slice(&key.to_le_bytes());
            }
        }
    }

    /// Decodes every operation of a payload, in order; `None` if it is malformed (which a checksummed
    /// record written by this module never is).
    pub(crate) fn decode_all(mut payload: &[u8]) -> Option<Vec<Op<'_>>> {
        fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if input.len() < n {
                return None;
            }
            let (head, tail) = input.split_at(n);
            *input = tail;
            Some(head)
        }
        fn u64_of(input: &mut &[u8]) -> Option<u64> {
            Some(u64::from_le_bytes(take(input, 8)?.try_into().ok()?))
        }
        fn bytes_of<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
            let length = u32::from_le_bytes(take(input, 4)?.try_into().ok()?);
            take(input, length as usize)
        }
        fn str_of<'a>(input: &mut &'a [u8]) -> Option<&'a str> {
            std::str::from_utf8(bytes_of(input)?).ok()
        }
        let mut ops = Vec::new();
        while !payload.is_empty() {
            let head = take(&mut payload, 2)?;
            let table = Table::from_byte(head[1])?;
            ops.push(match head[0] {
                PUT_STR_U64 => Op::PutStrU64(table, str_of(&mut payload)?, u64_of(&mut payload)?),
                PUT_STR_BYTES => {
                    Op::PutStrBytes(table, str_of(&mut payload)?, bytes_of(&mut payload)?)
                }
                PUT_U64_BYTES => {
                    Op::PutU64Bytes(table, u64_of(&mut payload)?, bytes_of(&mut payload)?)
                }
                REMOVE_STR => Op::RemoveStr(table, str_of(&mut payload)?),
                REMOVE_U64 => Op::RemoveU64(table, u64_of(&mut payload)?),
                _ => return None,
            });
        }
        Some(ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(ops: &[Op<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for op in ops {
            op.encode(&mut out);
        }
        out
    }

    #[test]
    fn operations_read_back_as_written() {
        let ops = [
            Op::PutStrU64(Table::Paths, "1.2/3.4/5.6", 7),
            Op::PutStrBytes(Table::Copies, "studies/x.dcm", b"\0DICM\xff"),
            Op::PutU64Bytes(Table::Changes, u64::MAX, b""),
            Op::RemoveStr(Table::Sops, ""),
            Op::RemoveU64(Table::Versions, 42),
        ];
        let encoded = payload(&ops);
        assert_eq!(Op::decode_all(&encoded).unwrap(), ops);
        assert!(
            Op::decode_all(&encoded[..encoded.len() - 1]).is_none(),
            "a cut payload is refused, not half applied"
        );
    }

    #[test]
    fn a_reopened_log_gives_back_its_consecutive_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut log, records) = RedoLog::open(&path).unwrap();
        assert!(records.is_empty());
        for lsn in 1..=3 {
            log.append(lsn, &vec![lsn as u8; 100 * lsn as usize])
                .unwrap();
        }
        drop(log);
        let (_, records) = RedoLog::open(&path).unwrap();
        assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(records[2].payload, vec![3u8; 300]);
    }

    #[test]
    fn a_torn_or_damaged_tail_ends_the_log_where_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut log, _) = RedoLog::open(&path).unwrap();
        for lsn in 1..=3 {
            log.append(lsn, &[lsn as u8; 64]).unwrap();
        }
        let whole = std::fs::read(&path).unwrap();
        let record_len = HEADER_LEN + 64;
        let start = FILE_HEADER_LEN as usize;
        // Cut anywhere inside the third record: the first two survive.
        for cut in (start + 2 * record_len)..(start + 3 * record_len) {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let (_, records) = RedoLog::open(&path).unwrap();
            assert_eq!(records.len(), 2, "cut at {cut}");
        }
        // A flipped byte anywhere in the second record ends the log after the first.
        for at in (start + record_len)..(start + 2 * record_len) {
            let mut damaged = whole.clone();
            damaged[at] ^= 0x40;
            std::fs::write(&path, &damaged).unwrap();
            let (_, records) = RedoLog::open(&path).unwrap();
            assert_eq!(records.len(), 1, "flipped byte {at}");
        }
    }

    #[test]
    fn after_a_rewind_nothing_appended_before_it_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut log, _) = RedoLog::open(&path).unwrap();
        // A client-chosen payload that holds what looks like the record after the next one.
        let mut forged = Vec::new();
        forged.extend_from_slice(&8u32.to_le_bytes());
        forged.extend_from_slice(&checksum(log.salt, 3, &[9; 8]).to_le_bytes());
        forged.extend_from_slice(&3u64.to_le_bytes());
        forged.extend_from_slice(&[9; 8]);
        log.append(1, &[0u8; 100]).unwrap();
        log.append(2, &forged).unwrap();
        log.rewind().unwrap();
        let (_, records) = RedoLog::open(&path).unwrap();
        assert!(records.is_empty(), "a rewound log reads back empty");
        // The next cycle's first record ends where the forged bytes begin: they are not read.
        let (mut log, _) = RedoLog::open(&path).unwrap();
        log.append(2, &[7u8; 100 + HEADER_LEN]).unwrap();
        let (_, records) = RedoLog::open(&path).unwrap();
        assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), [2]);
        assert_eq!(log.len(), (2 * HEADER_LEN + 100) as u64);
    }

    #[test]
    fn a_log_cut_inside_its_header_opens_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"DWCL").unwrap();
        let (mut log, records) = RedoLog::open(&path).unwrap();
        assert!(records.is_empty());
        log.append(1, b"x").unwrap();
        let (_, records) = RedoLog::open(&path).unwrap();
        assert_eq!(records.len(), 1);
    }
}

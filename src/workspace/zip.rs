//! A streaming ZIP writer (APPNOTE 6.3): entries written one after the
//! other to a pipe that cannot seek, so each file's CRC and sizes follow
//! its data in a data descriptor. Every entry carries ZIP64 sizes (a
//! workspace may hold files and archives over 4 GiB), and the archive ends
//! with the ZIP64 end records; `unzip`, Python's zipfile and the usual
//! desktop tools read it. Files are deflated; directories and symbolic
//! links (stored as links: their target is the entry's data, the mode says
//! link) are stored.

use std::io::{self, Read, Write};

const LOCAL: u32 = 0x0403_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;
/// Version 4.5: ZIP64.
const VERSION: u16 = 45;
/// Made by Unix (3), version 4.5: the external attributes hold the mode.
const MADE_BY: u16 = (3 << 8) | VERSION;
/// Sizes in the data descriptor, UTF-8 names.
const FLAGS: u16 = 0x0008 | 0x0800;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;

/// What the central directory needs of one written entry.
struct Written {
    name: Vec<u8>,
    method: u16,
    time: (u16, u16),
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
    mode: u32,
}

/// Writes entries to `out`, counting what it wrote.
pub struct ZipWriter<W: Write> {
    out: Counting<W>,
    entries: Vec<Written>,
}

struct Counting<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// CRC-32 of what passes through.
struct Crc<R> {
    inner: R,
    crc: crc32fast::Hasher,
    size: u64,
}

impl<R: Read> Read for Crc<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// MS-DOS time and date of Unix time `mtime` (UTC; 1980 at the earliest).
fn dos_time(mtime: i64) -> (u16, u16) {
    let (y, mo, d, h, mi, s) = crate::clock::civil(mtime.max(315_532_800) as u64);
    let time = ((h as u16) << 11) | ((mi as u16) << 5) | (s as u16 / 2);
    let date = (((y - 1980).min(127) as u16) << 9) | ((mo as u16) << 5) | d as u16;
    (time, date)
}

fn le16(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}
fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}
fn le64(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

impl<W: Write> ZipWriter<W> {
    pub fn new(out: W) -> ZipWriter<W> {
        ZipWriter {
            out: Counting {
                inner: out,
                written: 0,
            },
            entries: Vec::new(),
        }
    }

    /// A directory entry (`name` without the trailing slash).
    pub fn directory(&mut self, name: &str, mode: u32, mtime: i64) -> io::Result<()> {
        let name = format!("{name}/");
        self.entry(
            &name,
            0o040000 | (mode & 0o7777),
            mtime,
            STORED,
            &mut io::empty(),
        )
    }

    /// A symbolic link to `target`, stored as a link.
    pub fn symlink(&mut self, name: &str, target: &[u8], mtime: i64) -> io::Result<()> {
        self.entry(name, 0o120777, mtime, STORED, &mut &target[..])
    }

    /// A file with `data`, deflated.
    pub fn file(
        &mut self,
        name: &str,
        mode: u32,
        mtime: i64,
        data: &mut (impl Read + ?Sized),
    ) -> io::Result<()> {
        self.entry(name, 0o100000 | (mode & 0o7777), mtime, DEFLATED, data)
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        mtime: i64,
        method: u16,
        data: &mut (impl Read + ?Sized),
    ) -> io::Result<()> {
        let offset = self.out.written;
        let time = dos_time(mtime);
        let name = name.as_bytes().to_vec();
        // The local header: sizes in the ZIP64 extra field, all zero here
        // (the data descriptor has them).
        let mut h = Vec::with_capacity(30 + name.len() + 20);
        h.extend(le32(LOCAL));
        h.extend(le16(VERSION));
        h.extend(le16(FLAGS));
        h.extend(le16(method));
        h.extend(le16(time.0));
        h.extend(le16(time.1));
        h.extend(le32(0));
        h.extend(le32(u32::MAX));
        h.extend(le32(u32::MAX));
        h.extend(le16(name.len() as u16));
        h.extend(le16(20));
        h.extend(&name);
        h.extend(le16(1));
        h.extend(le16(16));
        h.extend(le64(0));
        h.extend(le64(0));
        self.out.write_all(&h)?;
        let start = self.out.written;
        let mut reader = Crc {
            inner: data,
            crc: crc32fast::Hasher::new(),
            size: 0,
        };
        if method == DEFLATED {
            let mut z =
                flate2::write::DeflateEncoder::new(&mut self.out, flate2::Compression::fast());
            io::copy(&mut reader, &mut z)?;
            z.finish()?;
        } else {
            io::copy(&mut reader, &mut self.out)?;
        }
        let compressed = self.out.written - start;
        let (crc, size) = (reader.crc.finalize(), reader.size);
        let mut d = Vec::with_capacity(24);
        d.extend(le32(DESCRIPTOR));
        d.extend(le32(crc));
        d.extend(le64(compressed));
        d.extend(le64(size));
        self.out.write_all(&d)?;
        self.entries.push(Written {
            name,
            method,
            time,
            crc,
            compressed,
            size,
            offset,
            mode,
        });
        Ok(())
    }

    /// The central directory and the end records; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let start = self.out.written;
        for e in &self.entries {
            let mut c = Vec::with_capacity(46 + e.name.len() + 28);
            c.extend(le32(CENTRAL));
            c.extend(le16(MADE_BY));
            c.extend(le16(VERSION));
            c.extend(le16(FLAGS));
            c.extend(le16(e.method));
            c.extend(le16(e.time.0));
            c.extend(le16(e.time.1));
            c.extend(le32(e.crc));
            c.extend(le32(u32::MAX));
            c.extend(le32(u32::MAX));
            c.extend(le16(e.name.len() as u16));
            c.extend(le16(28));
            c.extend(le16(0)); // comment
            c.extend(le16(0)); // disk
            c.extend(le16(0)); // internal attributes
            c.extend(le32(e.mode << 16));
            c.extend(le32(u32::MAX));
            c.extend(&e.name);
            c.extend(le16(1));
            c.extend(le16(24));
            c.extend(le64(e.size));
            c.extend(le64(e.compressed));
            c.extend(le64(e.offset));
            self.out.write_all(&c)?;
        }
        let end = self.out.written;
        let (count, size) = (self.entries.len() as u64, end - start);
        let mut r = Vec::with_capacity(56 + 20 + 22);
        r.extend(le32(END64));
        r.extend(le64(44));
        r.extend(le16(MADE_BY));
        r.extend(le16(VERSION));
        r.extend(le32(0));
        r.extend(le32(0));
        r.extend(le64(count));
        r.extend(le64(count));
        r.extend(le64(size));
        r.extend(le64(start));
        r.extend(le32(LOCATOR64));
        r.extend(le32(0));
        r.extend(le64(end));
        r.extend(le32(1));
        r.extend(le32(END));
        r.extend(le16(0));
        r.extend(le16(0));
        r.extend(le16(count.min(0xFFFF) as u16));
        r.extend(le16(count.min(0xFFFF) as u16));
        r.extend(le32(size.min(u32::MAX as u64) as u32));
        r.extend(le32(start.min(u32::MAX as u64) as u32));
        r.extend(le16(0));
        self.out.write_all(&r)?;
        self.out.flush()?;
        Ok(self.out.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times() {
        // 2026-11-21T06:28:47Z
        let (t, d) = dos_time(1_795_242_527);
        assert_eq!((t >> 11, (t >> 5) & 63, (t & 31) * 2), (6, 28, 46));
        assert_eq!((d >> 9) + 1980, 2026);
        assert_eq!(((d >> 5) & 15, d & 31), (11, 21));
        // Before 1980: 1980.
        assert_eq!(dos_time(0).1 >> 9, 0);
    }
}

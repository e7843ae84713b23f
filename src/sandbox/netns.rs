//! The network namespace of a sandbox with an allow-list. bubblewrap's
//! own (`--unshare-net`) belongs to its outer user namespace, while the
//! agent runs in a nested one (for the sandbox's own /dev/pts), so nothing
//! inside could listen on a port below 1024 there (`api.example.com:443`).
//! Instead bubblewrap gives `sandbox-exec` a few capabilities, valid only in
//! the sandbox's user namespace ([`CAPS`]); it makes a network namespace
//! of that namespace, brings its loopback up, binds the listeners, and
//! drops every capability (bounding set, ambient, effective, permitted,
//! inheritable) before the agent starts.

/// What bubblewrap adds for `sandbox-exec` (`--cap-add`).
pub const CAPS: [&str; 4] = [
    "CAP_SYS_ADMIN",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETPCAP",
];

/// The capability numbers of [`CAPS`], CAP_SETPCAP last (dropping the
/// others needs it).
const CAP_NUMBERS: [libc::c_ulong; 4] = [21, 12, 10, 8];

/// A new network namespace with its loopback up.
pub fn isolate() -> std::io::Result<()> {
    // SAFETY: unshare with a flag; affects this process only (the threads
    // that relay are started after).
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    loopback_up()
}

/// `struct ifreq` with the flags member of its union.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a socket used for two ioctls on a valid, zeroed ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _rest: [0; 22],
        };
        req.name[..2].copy_from_slice(b"lo");
        let ok = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) == 0 && {
            req.flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) == 0
        };
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if ok {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// Drops every capability of this process for good: what it starts has
/// none either.
pub fn drop_capabilities() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // SAFETY: prctl and capset with valid arguments.
    unsafe {
        for cap in CAP_NUMBERS {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let header = Header {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let data = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

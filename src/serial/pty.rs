//! Pseudo-terminal pairs: a real tty path for the serial adapter, with the other end held in-process.
//!
//! The simulated door and the tests hold the master end as an async stream; the agent opens the
//! slave by its path exactly as it would open `/dev/ttyS1`, so the real serial code path is used.
//! A pty ignores the baud rate and delivers bytes at once (pacing is the simulator's job).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An open pty: the master end as an async byte stream, and the slave's path for a serial port.
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    /// Held open for the life of the pair: with no slave fd open, reads on the master fail with EIO
    /// whenever the peer closes and reopens the port.
    _slave: OwnedFd,
    slave_path: PathBuf,
}

impl Pty {
    /// Opens a new pty pair in raw mode. Must be called inside a tokio runtime.
    pub fn open() -> io::Result<Self> {
        let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        let mut attrs = tcgetattr(&pair.slave).map_err(io::Error::from)?;
        cfmakeraw(&mut attrs);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &attrs).map_err(io::Error::from)?;
        let slave_path = nix::unistd::ttyname(&pair.slave).map_err(io::Error::from)?;
        let flags = fcntl(&pair.master, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(&pair.master, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        // `AsyncFd::new` is deprecated because a borrowed raw fd could be closed behind tokio's back;
        // here tokio receives the `OwnedFd` itself, so nothing else can close it. The sound
        // replacement (`register`) is `unsafe`, which this crate forbids.
        #[allow(deprecated)]
        let master = AsyncFd::new(pair.master)?;
        Ok(Self {
            master,
            _slave: pair.slave,
            slave_path,
        })
    }

    /// The slave's device path (e.g. `/dev/pts/7`), to open as a serial port.
    pub fn slave_path(&self) -> &std::path::Path {
        &self.slave_path
    }
}

impl AsyncRead for Pty {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.master.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref().as_fd(), unfilled).map_err(io::Error::from)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.master.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn serial_port_opened_by_pty_path_exchanges_bytes_with_the_master() {
        let mut pty = Pty::open().unwrap();
        let mut port = crate::serial::open(pty.slave_path(), 115_200).unwrap();
        port.write_all(&[0x53, 0x01, 0xFF]).await.unwrap();
        let mut got = [0u8; 3];
        pty.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [0x53, 0x01, 0xFF]);
        pty.write_all(b"\x00\x0a\x0d").await.unwrap();
        let mut back = [0u8; 3];
        port.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"\x00\x0a\x0d", "raw mode: no CR/LF translation");
    }
}

//! The serial adapter: the only user of tokio-serial; opens ports and drives an OSDP session over them
//! ([`link`]: the session driver and its command queue).

pub mod link;
pub mod pty;
#[cfg(test)]
pub(crate) mod test_pd;

use std::path::Path;

use tokio_serial::{SerialPortBuilderExt, SerialStream};

/// Why a serial port could not be used. Names the port and baud so a technician can check the wiring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerialError {
    #[error("cannot open serial port {port} at {baud} baud: {source}")]
    Open {
        port: String,
        baud: u32,
        #[source]
        source: tokio_serial::Error,
    },
    #[error(
        "cannot set the RS-485 mode of {port}: {source}; check that its driver supports TIOCSRS485, or remove rs485 from its [[line]]"
    )]
    Rs485 {
        port: String,
        #[source]
        source: std::io::Error,
    },
}

/// Opens `path` (a `/dev/tty*` device or a pseudo-terminal) at `baud`, 8N1, no flow control, raw.
pub fn open(path: &Path, baud: u32) -> Result<SerialStream, SerialError> {
    let port = path.to_string_lossy().into_owned();
    tokio_serial::new(&port, baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(|source| SerialError::Open { port, baud, source })
}

/// The kernel's RS-485 mode for a port (`TIOCSRS485`): RTS drives the transceiver's driver enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rs485Mode {
    /// RTS low while sending and high after (an inverting driver); else high while sending.
    pub rts_low_on_send: bool,
    /// After raising RTS, before the first bit (the kernel counts whole milliseconds).
    pub delay_before_send: std::time::Duration,
    /// After the last bit, before dropping RTS.
    pub delay_after_send: std::time::Duration,
}

/// Opens the port of a line: applies the kernel's RS-485 mode first when `rs485` is set (through the
/// `serial2` crate, which owns the ioctl; the mode stays with the port after that handle closes),
/// then [`open`]s it. `None` leaves the port's mode as the system set it.
pub(crate) fn open_line(path: &Path, baud: u32, rs485: Option<&Rs485Mode>) -> Result<SerialStream, SerialError> {
    if let Some(mode) = rs485 {
        set_rs485(path, mode).map_err(|source| SerialError::Rs485 {
            port: path.display().to_string(),
            source,
        })?;
    }
    open(path, baud)
}

#[cfg(target_os = "linux")]
fn set_rs485(path: &Path, mode: &Rs485Mode) -> std::io::Result<()> {
    use serial2::rs4xx::{Rs485Config, TransceiverMode};
    let port = serial2::SerialPort::open(path, serial2::KeepSettings)?;
    let mut config = Rs485Config::new();
    config.set_invert_rts(mode.rts_low_on_send);
    config.set_delay_before_send(mode.delay_before_send);
    config.set_delay_after_send(mode.delay_after_send);
    port.set_rs4xx_mode(TransceiverMode::Rs485(config))
}

#[cfg(not(target_os = "linux"))]
fn set_rs485(_: &Path, _: &Rs485Mode) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the kernel RS-485 mode needs Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_without_rs485_support_is_refused_with_what_to_check() {
        let pty = pty::Pty::open().unwrap();
        let mode = Rs485Mode {
            rts_low_on_send: false,
            delay_before_send: std::time::Duration::ZERO,
            delay_after_send: std::time::Duration::ZERO,
        };
        let err = open_line(pty.slave_path(), 115_200, Some(&mode))
            .unwrap_err()
            .to_string();
        assert!(err.contains("RS-485 mode") && err.contains("[[line]]"), "{err}");
        assert!(open_line(pty.slave_path(), 115_200, None).is_ok());
    }

    #[tokio::test]
    async fn opening_a_missing_port_names_port_and_baud() {
        let err = open(Path::new("/dev/ttyDOES-NOT-EXIST"), 9600).unwrap_err().to_string();
        assert!(err.contains("/dev/ttyDOES-NOT-EXIST") && err.contains("9600"), "{err}");
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_a_missing_port_names_port_and_baud() {
        let err = open(Path::new("/dev/ttyDOES-NOT-EXIST"), 9600).unwrap_err().to_string();
        assert!(err.contains("/dev/ttyDOES-NOT-EXIST") && err.contains("9600"), "{err}");
    }
}

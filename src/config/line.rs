//! `[[line]]`: optional settings of one serial port shared by the doors on it — the kernel's RS-485
//! mode for UARTs that drive the transceiver through RTS, and dropping the echo of our own bytes.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// One `[[line]]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLine {
    pub port: Option<PathBuf>,
    pub rs485: Option<String>,
    pub rs485_delay_before_send: Option<String>,
    pub rs485_delay_after_send: Option<String>,
    pub discard_echo: Option<bool>,
}

/// How the kernel drives RTS (the transceiver's driver enable) around our transmissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rs485Rts {
    /// RTS high while sending, low after (most DE-on-RTS boards).
    HighOnSend,
    /// RTS low while sending, high after (boards with an inverting driver).
    LowOnSend,
}

/// The kernel's RS-485 mode (`TIOCSRS485`) for a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rs485Mode {
    pub rts: Rs485Rts,
    /// After raising RTS, before the first bit (the kernel counts whole milliseconds).
    pub delay_before_send: Duration,
    /// After the last bit, before dropping RTS.
    pub delay_after_send: Duration,
}

/// Settings of one serial port; a port without a `[[line]]` gets the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineConfig {
    /// Serial device, resolved against the config dir; the `port` of at least one door.
    pub port: PathBuf,
    /// `None`: the port's RS-485 mode is left as the system set it (`rs485 = "off"`, the default).
    pub rs485: Option<Rs485Mode>,
    /// The adapter hears its own transmissions: drop them from the input. Default false.
    pub discard_echo: bool,
}

impl LineConfig {
    /// The settings `lines` give the port at `port`, or the defaults when none does.
    pub(crate) fn of_port(lines: &[LineConfig], port: &std::path::Path) -> LineConfig {
        lines
            .iter()
            .find(|l| l.port == port)
            .cloned()
            .unwrap_or_else(|| LineConfig {
                port: port.to_path_buf(),
                ..LineConfig::default()
            })
    }
}

/// The `rs485` values, for messages.
pub(crate) const RS485_VALUES: &str = "\"off\", \"rts-high-on-send\" or \"rts-low-on-send\"";

/// Parses an `rs485` value; `Ok(None)` for "off".
pub(crate) fn parse_rs485(v: &str) -> Result<Option<Rs485Rts>, String> {
    match v {
        "off" => Ok(None),
        "rts-high-on-send" => Ok(Some(Rs485Rts::HighOnSend)),
        "rts-low-on-send" => Ok(Some(Rs485Rts::LowOnSend)),
        other => Err(format!("{other:?} is not an RS-485 mode; use {RS485_VALUES}")),
    }
}

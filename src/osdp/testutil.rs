//! Test-only OSDP helpers shared by the unit tests of the CP session and the OSDP door.

use super::{PacketRepr, Reply, WireError};

/// A well-formed reply packet from `address` with the given SQN (CRC mode, no mark byte).
pub(crate) fn reply_packet(address: u8, sqn: u8, reply: &Reply) -> Result<Vec<u8>, WireError> {
    let data = reply.encode();
    PacketRepr {
        address,
        reply: true,
        sqn,
        use_crc: true,
        code: reply.code(),
        data: &data,
    }
    .to_vec()
}

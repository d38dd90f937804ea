//! Sans-IO OSDP: packet views, CRC, the streaming decoder, commands and replies, the CP session state machine.

"""When the kernel received the last data on a TCP connection (Linux's ``TCP_INFO``).

Both ends of batchmig's HTTP need the moment bytes really arrived, not the moment an
event loop got round to them. The sandbox stamps each request with it (what its
throttle judges: a starved emulator reading a backlog late must not see a burst no
client sent), and the runner stamps each answer with it: the limiter lets a call go a
window after the answer to the call N before, and an answer that sat in the socket
while the loop served other instances for 30 ms would otherwise widen that window by
30 ms (measured in the mixed fleet's busy first seconds: a third of the bound key's
time over its cap). Linux keeps the time per connection, in jiffies; elsewhere it is
unknown and callers fall back to their clock.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

_TCP_INFO = getattr(socket, "TCP_INFO", None)
_LAST_DATA_RECV = struct.Struct("=I")
_LAST_DATA_RECV_OFFSET = 52
"""``tcpi_last_data_recv`` in Linux's ``struct tcp_info``: milliseconds since data last
arrived on the connection (8 one-byte fields, then 32-bit ones; it is the 12th)."""

RECEIVE_TICK = 0.010
"""The coarsest step of the kernel's receive time: one jiffy at HZ = 100 (Linux's
lowest; 250 and 1000 give 4 and 1 ms). The time since data arrived, counted in whole
jiffies, is up to one tick more or less than the truth."""


def received_ago(sock: Any) -> float | None:
    """Seconds since data last arrived on ``sock``, as the kernel counts them (up to
    ``RECEIVE_TICK`` off either way); None where the kernel does not say."""
    if _TCP_INFO is None or sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _LAST_DATA_RECV_OFFSET + 4)
    except OSError:  # closed meanwhile, or not a TCP socket
        return None
    if len(info) < _LAST_DATA_RECV_OFFSET + 4:
        return None
    elapsed_ms: int = _LAST_DATA_RECV.unpack_from(info, _LAST_DATA_RECV_OFFSET)[0]
    return elapsed_ms / 1000.0

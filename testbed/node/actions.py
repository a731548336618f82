"""Actions a node emits for its runtime to carry out, as tuples whose first element is one of these codes.

The node never performs I/O: it appends actions to `node.out`; the runtime drains the list after each input.

| code        | tuple                                        | the runtime ...                                         |
|-------------|----------------------------------------------|---------------------------------------------------------|
| SEND        | (SEND, peer, frame, tx_s, key_index)         | transmits frame to neighbour `peer`; the channel is busy |
|             |                                              | for tx_s; key_index is the master-pool unit a DATA frame |
|             |                                              | consumed (-1 for control frames)                        |
| SEND_E2E    | (SEND_E2E, dst, frame)                       | routes a control frame to remote node `dst` over the    |
|             |                                              | classical network (relays forward it untouched)         |
| TIMER       | (TIMER, when_s, key)                         | calls node.timer_fired(when_s, key) at when_s            |
| DELIVER     | (DELIVER, frame)                             | records a message delivered at its destination          |
| ACKED       | (ACKED, frame)                               | records that the source released the end-to-end key     |
| DROP        | (DROP, frame, reason)                        | records a dropped message                               |
| CONTROL     | (CONTROL, peer, flow, kind)                  | records a control event (pause/resume/ecn/...)          |
| SAMPLE      | (SAMPLE, peer, keys, rate_bps, queued, paused) | records one key-pool sample of port `peer`             |
"""

SEND = 0
SEND_E2E = 1
TIMER = 2
DELIVER = 3
ACKED = 4
DROP = 5
CONTROL = 6
SAMPLE = 7

# Drop reasons
DROP_QUEUE_FULL = 1  # tail drop at a bounded per-flow queue
DROP_NO_ROUTE = 2
DROP_NO_STATE = 3  # e.g. RSVP: a message for a flow without a reservation at this hop
DROP_LINK_DOWN = 4
DROP_REASONS = {DROP_QUEUE_FULL: "queue_full", DROP_NO_ROUTE: "no_route", DROP_NO_STATE: "no_state",
                DROP_LINK_DOWN: "link_down"}

"""API Gateway's semantics as plain Python: no asyncio, no sockets (python-websockets style).

`session` (one WebSocket connection: bytes and time in, events and bytes out), `connect`
(identity sources → authorizer → `$connect`), `management` (`@connections` as a function),
`stage` and `throttle` (a stage and its token bucket), `routing`, `events`, `authorizers`,
`connections` (the registry), `quotas`, `invocation` (the contract with the runtime),
`observer` (what observers are told) and `cors` (an HTTP API's CorsConfiguration applied).
Nothing here imports `server/`, `runtime/` or `template/`; the adapters around it live there.
"""

"""Domain code of the real-time app, shared by every function through the Lambda layer.

Modules are named after what they are about: `models` (the wire frames), `auth` (tokens),
`chat` (rooms and messages), `transactions` and `income` (the money side), `store` (DynamoDB),
`fanout` (pushing frames through the API Gateway Management API).
"""

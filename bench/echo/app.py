"""Echo each frame back to its sender through the Management API, as AWS's examples do."""

import boto3

_clients = {}


def handler(event, context):
    ctx = event["requestContext"]
    endpoint = f"https://{ctx['domainName']}/{ctx['stage']}"
    client = _clients.get(endpoint)
    if client is None:
        client = _clients[endpoint] = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)
    client.post_to_connection(ConnectionId=ctx["connectionId"], Data=event["body"].encode())
    return {"statusCode": 200}

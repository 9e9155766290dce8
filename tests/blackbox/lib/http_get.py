"""The request every Python black-box client sends (imported by the clients in this folder):
`GET /` with `Connection: close`, read until the server ends the connection."""


def http_get(send, read, name, errors=(OSError,)):
    """Sends `GET /` for Host NAME through SEND, then calls READ until it returns nothing or
    raises one of ERRORS (a close without close_notify); returns the bytes read."""
    send(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    try:
        while True:
            chunk = read()
            if not chunk:
                break
            data += bytes(chunk)
    except errors:
        pass
    return data

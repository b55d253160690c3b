"""The ASK SDK's LwaClient (ask-sdk-model, with ask-sdk-core's DefaultSerializer and DefaultApiClient, as a skill
wires them) refreshing with its configured refresh token, once per run of the tool: a new LwaClient each time, the
same AuthenticationConfiguration, so the same refresh token is sent again (what ask-cli and skills do).

Usage: lwa_client.py BASE CLIENT_ID CLIENT_SECRET REFRESH_TOKEN TIMES
Prints one JSON line per refresh: {"access_token": ...} or {"status": ..., "error": ...}.

DefaultApiClient refuses any endpoint that is not https ("Requests against non-HTTPS endpoints are not allowed"),
and the test server speaks plain HTTP on 127.0.0.1. So the endpoint LwaClient is given is the https:// form of BASE,
and only the transport below DefaultApiClient's checks (the `requests` call it resolves) sends it as http://;
everything LwaClient and DefaultApiClient do (path /auth/O2/token, the form body, headers, parsing) is unchanged.
"""

import json
import sys

from ask_sdk_core.api_client import DefaultApiClient
from ask_sdk_core.serialize import DefaultSerializer
from ask_sdk_model.services import ApiConfiguration, AuthenticationConfiguration, ServiceException
from ask_sdk_model.services.lwa import LwaClient


class PlainHttpTransport(DefaultApiClient):
    def _resolve_method(self, request):
        method = super()._resolve_method(request)

        def send(url, headers, data):
            assert url.startswith("https://"), url
            return method(url="http://" + url[len("https://"):], headers=headers, data=data)

        return send


def main():
    base, client_id, secret, refresh_token, times = sys.argv[1:6]
    endpoint = "https://" + base.split("://", 1)[1]
    auth = AuthenticationConfiguration(
        client_id=client_id, client_secret=secret, refresh_token=refresh_token
    )
    for _ in range(int(times)):
        api = ApiConfiguration(
            serializer=DefaultSerializer(), api_client=PlainHttpTransport(), api_endpoint=endpoint
        )
        lwa = LwaClient(api_configuration=api, authentication_configuration=auth, grant_type="refresh_token")
        try:
            print(json.dumps({"access_token": lwa.get_access_token_from_refresh_token()}), flush=True)
        except ServiceException as e:
            body = e.body
            error = getattr(body, "error_type", None) if body is not None else None
            print(json.dumps({"status": e.status_code, "error": error}), flush=True)


if __name__ == "__main__":
    main()

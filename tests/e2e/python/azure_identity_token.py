"""Gets a token from crosspool with azure-identity and prints it as JSON.

Usage: python azure_identity_token.py CONFIG_JSON
CONFIG_JSON: {"kind": "client_secret" | "username_password", "authority", "tenant_id",
              "client_id", "client_secret"?, "username"?, "password"?, "scope"}
The CA bundle comes from REQUESTS_CA_BUNDLE, as for every requests-based client.
"""

import json
import sys
import warnings

from azure.identity import ClientSecretCredential, UsernamePasswordCredential


def main() -> int:
    config = json.loads(sys.argv[1])
    common = {"authority": config["authority"], "disable_instance_discovery": True}
    if config["kind"] == "client_secret":
        credential = ClientSecretCredential(config["tenant_id"], config["client_id"], config["client_secret"], **common)
    else:
        # Deprecated upstream (no MFA), still what scripted user sign-in uses.
        warnings.simplefilter("ignore", DeprecationWarning)
        credential = UsernamePasswordCredential(
            config["client_id"], config["username"], config["password"], tenant_id=config["tenant_id"], **common
        )
    try:
        token = credential.get_token(config["scope"])
    except Exception as error:  # The test reads the message.
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps({"token": token.token, "expires_on": token.expires_on}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

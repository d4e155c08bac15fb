# moto_server for bench:admin, with two of moto 5.2's Secrets Manager costs that grow with the
# number of secrets taken out (answers unchanged):
# - SecretsStore looks every secret up by scanning all of them (`for secret in dict.values(self)`)
#   to match a name or an ARN: a name is looked up in the dict itself here (its key), an ARN still
#   by moto's own scan (keybroker sends names);
# - ListSecrets renders every matching secret (to_dict) before cutting one page of them: here only
#   the page is rendered.
# At 10,000 secrets the scan made each call several ms slower and a listing page cost 10,000 renders.
# It also logs no access line per request.
# Run as moto_server: python3 bench/moto-indexed.py -H 127.0.0.1 -p PORT
import logging
import sys

from moto.secretsmanager import models
from moto.server import main

_original_store = models.SecretsStore


class IndexedSecretsStore(_original_store):
    """Names are the dict's keys: found in O(1). ARNs (never sent by keybroker) take moto's own path."""

    def __getitem__(self, key):
        if not key.startswith("arn:"):
            return dict.__getitem__(self, key)
        return _original_store.__getitem__(self, key)

    def __contains__(self, key):  # type: ignore[override]
        if not key.startswith("arn:"):
            return dict.__contains__(self, key)
        return _original_store.__contains__(self, key)

    def get(self, key):  # type: ignore[override]
        if not key.startswith("arn:"):
            return dict.get(self, key)
        return _original_store.get(self, key)

    def pop(self, key):  # type: ignore[override]
        if not key.startswith("arn:"):
            return dict.pop(self, key, None)
        return _original_store.pop(self, key)


def list_secrets(self, filters, max_results=models.MAX_RESULTS_DEFAULT, next_token=None, include_planned_deletion=False):
    matching = []
    for secret in self.secrets.values():
        if getattr(secret, "deleted_date", None) and not include_planned_deletion:
            continue
        if models._matches(secret, filters):
            matching.append(secret)
    start = int(next_token or 0)
    end = start + int(max_results or models.MAX_RESULTS_DEFAULT)
    return [secret.to_dict() for secret in matching[start:end]], (str(end) if end < len(matching) else None)


_original_init = models.SecretsManagerBackend.__init__


def _init(self, region_name, account_id):
    _original_init(self, region_name, account_id)
    self.secrets = IndexedSecretsStore()


models.SecretsManagerBackend.__init__ = _init
models.SecretsManagerBackend.list_secrets = list_secrets

if __name__ == "__main__":
    # No access log line per request: at thousands of calls it is the emulator's work, not the store's.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    sys.exit(main())

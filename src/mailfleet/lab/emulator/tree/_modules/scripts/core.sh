#!/usr/bin/env bash
# mailcow emulator: helper functions shared by update.sh (revision @MODULES_REVISION@).
MAILCOW_MODULES_REVISION="@MODULES_REVISION@"

# The options update.sh re-adds to mailcow.conf when missing (like new_options.sh).
adapt_new_options() {
  local conf="$1"
  grep -q '^#\?API_KEY=' "${conf}" || printf '# Must be set for API_KEY to be active\n#API_KEY=\n' >> "${conf}"
  grep -q '^#\?API_KEY_READ_ONLY=' "${conf}" || printf '#API_KEY_READ_ONLY=\n' >> "${conf}"
  grep -q '^#\?API_ALLOW_FROM=' "${conf}" || printf '#API_ALLOW_FROM=172.22.1.1,127.0.0.1\n' >> "${conf}"
  grep -q '^SKIP_FTS=' "${conf}" || printf 'SKIP_FTS=n\n' >> "${conf}"
  grep -q '^LOG_LINES=' "${conf}" || printf 'LOG_LINES=9999\n' >> "${conf}"
  sed -i '/^SKIP_SOLR=/d; /^SOLR_HEAP=/d; /^SOLR_PORT=/d; /^ACME_CONTACT=/d' "${conf}"
}

#!/usr/bin/env bash
# mailcow emulator: writes data/web/inc/app_info.inc.php (version shown by the UI and
# GET /api/v1/get/status/version) from the checked-out tree.
BRANCH="${1:-master}"
VERSION=$(cat data/Dockerfiles/emulator/VERSION 2> /dev/null || echo unknown)
COMMIT=$(git rev-parse HEAD 2> /dev/null)
COMMIT_DATE=$(git log -1 --format=%as 2> /dev/null)
mkdir -p data/web/inc
cat << EOINFO > data/web/inc/app_info.inc.php
<?php
  \$MAILCOW_GIT_VERSION="${VERSION}";
  \$MAILCOW_LAST_GIT_VERSION="";
  \$MAILCOW_GIT_OWNER="mailcow";
  \$MAILCOW_GIT_REPO="mailcow-dockerized";
  \$MAILCOW_GIT_URL="https://github.com/mailcow/mailcow-dockerized";
  \$MAILCOW_GIT_COMMIT="${COMMIT}";
  \$MAILCOW_GIT_COMMIT_DATE="${COMMIT_DATE}";
  \$MAILCOW_BRANCH="${BRANCH}";
  \$MAILCOW_UPDATEDAT=$(date +%s);
?>
EOINFO

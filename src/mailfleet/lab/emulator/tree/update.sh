#!/usr/bin/env bash
# mailcow emulator: update.sh
# The real script's flags and exit codes: --check 0 (update available) / 3 (none) / 99 (fetch
# failed); --check-tags; --prefetch; --skip-start; --skip-ping-check; -f|--force; --gc; --dev.
# Exit 2 when _modules changed ("Please restart the update script."). The update commits
# "Before update on <date>", merges origin/<branch>, and runs docker compose down/pull/up -d.
# Fault injection: {"update-fails": true} in <docker root>/mailcow-emulator/faults.json makes
# the update fail after `docker compose down` and the merge (exit 1, stack left down).

PROMPT_TIMEOUT="${MAILCOW_EMULATOR_PROMPT_TIMEOUT:-30}"
ask() { local answer=""; printf "%s" "$1" >&2; read -t "${PROMPT_TIMEOUT}" -r answer || true; echo "${answer}"; }

if [ "$(id -u)" -ne "0" ]; then echo "You need to be root"; exit 1; fi
if [ ! -f "${PWD}/mailcow.conf" ]; then
  echo "Cannot find mailcow.conf - are you in the mailcow-dockerized directory? Run this script from there."
  exit 1
fi
SCRIPT_DIR="${PWD}"

CHECK=n; CHECK_TAGS=n; FORCE=n; PREFETCH=n; SKIP_START=n; SKIP_PING=n; GC=n; DEV=n; MERGE_STRATEGY=theirs
while (( "$#" )); do
  case "$1" in
    -c|--check) CHECK=y ;;
    --check-tags) CHECK_TAGS=y ;;
    --ours) MERGE_STRATEGY=ours ;;
    --gc) GC=y ;;
    --prefetch) PREFETCH=y ;;
    --skip-start) SKIP_START=y ;;
    --skip-ping-check) SKIP_PING=y ;;
    -f|--force) FORCE=y ;;
    -d|--dev) DEV=y ;;
    --stable|--nightly|--legacy)
      if [ "${FORCE}" == "y" ]; then echo "A Branch Switch can only be performed manually (monitored)."; exit 1; fi
      echo "mailcow emulator: branch switching is not emulated (only master exists)"; exit 1 ;;
    --help|-h)
      echo './update.sh [-c|--check] [--check-tags] [--ours] [--gc] [--prefetch] [--skip-start] [--skip-ping-check] [-f|--force] [-d|--dev] (mailcow emulator)'
      exit 0 ;;
    *) echo "Unknown parameter: $1"; exit 1 ;;
  esac
  shift
done

set -a; source <(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' mailcow.conf); set +a
DOCKER_ROOT="${MAILCOW_EMULATOR_DOCKER_ROOT:-/var/lib/docker}"
FAULTS="${DOCKER_ROOT}/mailcow-emulator/faults.json"
source _modules/scripts/core.sh

BRANCH="$(git rev-parse --abbrev-ref HEAD)"
[ "${BRANCH}" == "HEAD" ] && BRANCH=master
git config --local user.email > /dev/null 2>&1 || git config --local user.email moo@cow.moo
git config --local user.name > /dev/null 2>&1 || git config --local user.name moo

if [ "${CHECK}" == "y" ]; then
  if ! git fetch origin "${BRANCH}" > /dev/null 2>&1; then echo "Cannot fetch origin/${BRANCH}"; exit 99; fi
  LATEST_REV=$(git rev-parse "origin/${BRANCH}")
  if git merge-base --is-ancestor "${LATEST_REV}" HEAD; then echo "No updates available."; exit 3; fi
  echo "Updated code is available."
  git log --date=short --pretty=format:"%h %ad %s" "HEAD..origin/${BRANCH}" | head -n 20
  echo
  exit 0
fi

if [ "${CHECK_TAGS}" == "y" ]; then
  if ! git fetch --tags origin > /dev/null 2>&1; then echo "Cannot fetch tags from origin"; exit 99; fi
  LATEST_TAG=$(git tag --merged "origin/${BRANCH}" --sort=-creatordate | head -n 1)
  if [ -z "${LATEST_TAG}" ] || git merge-base --is-ancestor "${LATEST_TAG}" HEAD; then echo "No updates available."; exit 3; fi
  echo "New tag ${LATEST_TAG} is available."
  exit 0
fi

if [ "${DEV}" != "y" ]; then
  if ! git fetch origin "${BRANCH}" > /dev/null 2>&1; then echo "Cannot fetch origin/${BRANCH}"; exit 1; fi
  if ! git diff --quiet "origin/${BRANCH}" -- _modules update.sh; then
    git checkout "origin/${BRANCH}" -- _modules update.sh
    echo "_modules have been updated. Please restart the update script."
    exit 2
  fi
fi

if [ -x pre_update_hook.sh ]; then echo "Running pre-update-hook..."; ./pre_update_hook.sh || exit 1; fi

if [ "${PREFETCH}" == "y" ]; then
  echo "Prefetching images..."
  git show "origin/${BRANCH}:docker-compose.yml" | grep -E '^\s+image:' | awk '{print $2}' | while read -r image; do
    echo "Pulling ${image}... (mailcow emulator: nothing downloaded)"
  done
  exit 0
fi

if [ "${SKIP_PING}" != "y" ]; then
  # The real script pings public resolvers; the emulator only asks the kernel for a route.
  if ! ip -4 route get 1.1.1.1 > /dev/null 2>&1; then
    echo "Your server seems to be offline (no route to 1.1.1.1). Use --skip-ping-check to skip this check."
    exit 1
  fi
fi

if [ "${FORCE}" != "y" ]; then
  response=$(ask "Are you sure you want to update mailcow: dockerized? All containers will be stopped. [y/N] ")
  if [[ ! "${response}" =~ ^([yY][eE][sS]|[yY])+$ ]]; then echo "OK, exiting."; exit 0; fi
fi

echo -e "\e[32mValidating docker-compose stack configuration...\e[0m"
if ! docker compose config -q; then
  echo -e "\e[31mThe docker-compose stack configuration is invalid. Please fix it first.\e[0m"
  exit 1
fi

DATE=$(date +%Y-%m-%d_%H_%M_%S)
mkdir -p update_diffs
git diff --stat > "update_diffs/diff_before_update_${DATE}"

echo -e "\e[32mStopping mailcow...\e[0m"
docker compose down

adapt_new_options mailcow.conf

echo -e "\e[32mCommitting current status...\e[0m"
git add -u
git commit -am "Before update on ${DATE}" > /dev/null
echo -e "\e[32mFetching updated code from remote...\e[0m"
git fetch origin "${BRANCH}" > /dev/null 2>&1
echo -e "\e[32mMerging local with remote code (recursive, strategy: \"${MERGE_STRATEGY}\", options: \"patience\"...\e[0m"
git merge -X"${MERGE_STRATEGY}" -Xpatience -m "After update on ${DATE}" "origin/${BRANCH}"
MERGE_RETURN=$?
if [[ ${MERGE_RETURN} == 128 ]]; then
  echo -e "\e[31m\nOh no, what happened?\n=> You most likely added files to your local mailcow instance that were now added to the official mailcow repository. Please move them to another location before updating mailcow.\e[0m"
  exit 1
elif [[ ${MERGE_RETURN} == 1 ]]; then
  echo -e "\e[93mPotenial conflict, trying to fix...\e[0m"
  git status --porcelain | grep -E "UD|DU" | awk '{print $2}' | xargs -r rm -v
  git add -A
  git commit -m "After update on ${DATE}" > /dev/null
  git checkout .
elif [[ ${MERGE_RETURN} != 0 ]]; then
  echo -e "\e[31m\nOh no, something went wrong. Please check the error message above.\e[0m"
  exit 1
fi

if [ -f "${FAULTS}" ] && /usr/bin/python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("update-fails") else 1)' "${FAULTS}" 2> /dev/null; then
  echo -e "\e[31mmailcow emulator: injected fault update-fails: the update failed after merging; containers stay down.\e[0m"
  exit 1
fi

echo -e "\e[32mFetching new images, if any...\e[0m"
docker compose pull -q

bash _modules/scripts/app_info.sh "${BRANCH}"

if [ "${SKIP_START}" == "y" ]; then
  echo -e "\e[33mNot starting mailcow, please run \"docker compose up -d --remove-orphans\" to start mailcow.\e[0m"
else
  echo -e "\e[32mStarting mailcow...\e[0m"
  sleep 0
  docker compose up -d --remove-orphans || exit 1
fi

if [ "${GC}" == "y" ]; then echo "Garbage collection: nothing to remove (mailcow emulator)"; fi

if [ -x post_update_hook.sh ]; then echo "Running post-update-hook..."; ./post_update_hook.sh; fi

echo "mailcow emulator: updated to $(cat data/Dockerfiles/emulator/VERSION)"
exit 0

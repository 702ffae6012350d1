#!/usr/bin/env bash
# mailcow emulator: helper-scripts/backup_and_restore.sh
# backup vmail|crypt|redis|rspamd|postfix|mysql|all [--delete-days N], with
# MAILCOW_BACKUP_LOCATION and THREADS like the real script. Writes
# ${MAILCOW_BACKUP_LOCATION}/mailcow-YYYY-MM-DD-HH-MM-SS/ with mailcow.conf and
# backup_<component>.tar.zst (backup_<component>.tar.gz if zstd is absent: it says so)
# holding the volumes' data. The DKIM keys are in the redis volume. restore is not emulated.

PROMPT_TIMEOUT="${MAILCOW_EMULATOR_PROMPT_TIMEOUT:-30}"
ask() { local answer=""; printf "%s" "$1" >&2; read -t "${PROMPT_TIMEOUT}" -r answer || true; echo "${answer}"; }

if [[ ! ${1} =~ ^(backup|restore)$ ]]; then
  echo "First parameter needs to be 'backup' or 'restore'"
  exit 1
fi
if [[ ${1} == "restore" ]]; then
  echo "mailcow emulator: restore is interactive in Mailcow and not emulated; extract the backup_*.tar.* archives by hand"
  exit 1
fi
if [[ ! ${2} =~ ^(crypt|vmail|redis|rspamd|postfix|mysql|all|--delete-days)$ ]]; then
  echo "Second parameter needs to be 'vmail', 'crypt', 'redis', 'rspamd', 'postfix', 'mysql', 'all' or '--delete-days'"
  exit 1
fi

if [[ -z ${MAILCOW_BACKUP_LOCATION} ]]; then
  BACKUP_LOCATION=$(ask "Backup location (absolute path, starting with /): ")
else
  BACKUP_LOCATION=${MAILCOW_BACKUP_LOCATION}
fi
if [[ ! ${BACKUP_LOCATION} =~ ^/ ]]; then
  echo "Backup directory needs to be given as absolute path (starting with /)."
  exit 1
fi
if [[ -f ${BACKUP_LOCATION} ]]; then
  echo "${BACKUP_LOCATION} is a file!"
  exit 1
fi
if [[ ! -d ${BACKUP_LOCATION} ]]; then
  echo "${BACKUP_LOCATION} is not a directory"
  response=$(ask "Create it now? [y|N] ")
  if [[ ${response} =~ ^([yY][eE][sS]|[yY])+$ ]]; then
    mkdir -p "${BACKUP_LOCATION}" && chmod 755 "${BACKUP_LOCATION}"
  else
    echo "OK, bye"
    exit 0
  fi
fi
if [[ ! $(stat -Lc %a "${BACKUP_LOCATION}") =~ [0-9][0-9][5-7]$ ]]; then
  echo "${BACKUP_LOCATION} is not write-able for others, that's required for a backup."
  exit 1
fi

THREADS=${THREADS:-1}
if [[ ! ${THREADS} =~ ^[1-9][0-9]?$ ]]; then
  echo "Thread input is not a number!"
  exit 1
fi

SCRIPT_DIR="$( cd "$( dirname "${BASH_SOURCE[0]}" )" && pwd )"
COMPOSE_FILE="${SCRIPT_DIR}/../docker-compose.yml"
ENV_FILE="${SCRIPT_DIR}/../.env"
if [ ! -f "${COMPOSE_FILE}" ]; then
  echo "Compose file not found"
  exit 1
fi
echo "Using ${BACKUP_LOCATION} as backup/restore location."
echo
source <(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "${SCRIPT_DIR}/../mailcow.conf")
CMPS_PRJ=$(echo "${COMPOSE_PROJECT_NAME}" | tr -cd "A-Za-z-_")
DOCKER_ROOT="${MAILCOW_EMULATOR_DOCKER_ROOT:-/var/lib/docker}"

if command -v zstd > /dev/null 2>&1; then
  EXT=zst; COMPRESS="zstd --rsyncable -T${THREADS}"
else
  EXT=gz; COMPRESS="gzip"
  echo "mailcow emulator: zstd is not installed, writing .tar.gz archives instead of .tar.zst"
fi

backup_volume() {  # $1 volume name, $2 archive name, $3 path inside the archive
  local src="${DOCKER_ROOT}/volumes/${CMPS_PRJ}_${1}/_data"
  local empty=""
  if [ ! -d "${src}" ]; then empty=$(mktemp -d); src="${empty}"; fi
  tar --use-compress-program="${COMPRESS}" -cpf "${BACKUP_LOCATION}/backup_${2}.tar.${EXT}" \
    -C "${src}" --transform "s,^\.,${3}," . || { [ -n "${empty}" ] && rmdir "${empty}"; return 1; }
  [ -n "${empty}" ] && rmdir "${empty}"
  return 0
}

function backup() {
  DATE=$(date +"%Y-%m-%d-%H-%M-%S")
  mkdir -p "${BACKUP_LOCATION}/mailcow-${DATE}"
  chmod 755 "${BACKUP_LOCATION}/mailcow-${DATE}"
  cp "${SCRIPT_DIR}/../mailcow.conf" "${BACKUP_LOCATION}/mailcow-${DATE}"
  touch "${BACKUP_LOCATION}/mailcow-${DATE}/.$(uname -m)"
  BACKUP_LOCATION="${BACKUP_LOCATION}/mailcow-${DATE}"
  while (( "$#" )); do
    case "$1" in
      vmail|all) echo "Backup vmail..."; backup_volume vmail-vol-1 vmail vmail || return 1 ;;&
      crypt|all) echo "Backup crypt..."; backup_volume crypt-vol-1 crypt crypt || return 1 ;;&
      redis|all) echo "Backup redis..."; backup_volume redis-vol-1 redis redis || return 1 ;;&
      rspamd|all) echo "Backup rspamd..."; backup_volume rspamd-vol-1 rspamd rspamd || return 1 ;;&
      postfix|all) echo "Backup postfix..."; backup_volume postfix-vol-1 postfix postfix || return 1 ;;&
      mysql|all) echo "Backup mysql..."; backup_volume mysql-vol-1 mariadb backup_mariadb || return 1 ;;&
      --delete-days) shift; break ;;
    esac
    shift
  done
  echo "Backup done: ${BACKUP_LOCATION}"
}

function cleanup() {
  if [[ -z "${1}" ]]; then return 0; fi
  if [[ ! ${1} =~ ^[0-9]+$ ]]; then echo "'${1}' is not a number."; return 1; fi
  local base="${BACKUP_LOCATION%/mailcow-*}"
  echo "Deleting backups older than ${1} days from ${base}..."
  find "${base}"/mailcow-* -maxdepth 0 -mmin +$(( ${1} * 60 * 24 )) -exec rm -rf {} \;
}

shift
ARGS=("$@")
DELETE_DAYS=""
for (( i=0; i<${#ARGS[@]}; i++ )); do
  if [[ ${ARGS[$i]} == "--delete-days" ]]; then DELETE_DAYS="${ARGS[$((i+1))]:-}"; fi
done
if [[ ${ARGS[0]} != "--delete-days" ]]; then
  backup "${ARGS[@]}" || exit 1
fi
cleanup "${DELETE_DAYS}" || exit 1
exit 0

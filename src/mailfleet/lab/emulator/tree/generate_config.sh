#!/usr/bin/env bash
# mailcow emulator: generate_config.sh
# Same environment variables, prompts, outputs and exit codes as mailcow-dockerized's script
# (MAILCOW_HOSTNAME, MAILCOW_TZ, MAILCOW_BRANCH, SKIP_CLAMD, MAILCOW_DBPASS, MAILCOW_DBROOT,
# MAILCOW_REDISPASS, FORCE; --dev/-d keeps the current branch). Prompts time out after
# ${MAILCOW_EMULATOR_PROMPT_TIMEOUT:-30}s and count as "no", so nothing hangs forever.

set -o pipefail
PROMPT_TIMEOUT="${MAILCOW_EMULATOR_PROMPT_TIMEOUT:-30}"
ask() { local answer=""; printf "%s" "$1" >&2; read -t "${PROMPT_TIMEOUT}" -r answer || true; echo "${answer}"; }

DEV=n
for arg in "$@"; do
  case "${arg}" in
    -d|--dev) DEV=y ;;
    *) echo "Unknown parameter ${arg}"; exit 1 ;;
  esac
done

for bin in openssl git awk sha1sum grep cut; do
  if ! command -v "${bin}" > /dev/null 2>&1; then echo "Cannot find ${bin}, exiting..."; exit 1; fi
done

if [ ! -L "${PWD}/.env" ] || [ "$(readlink "${PWD}/.env")" != "mailcow.conf" ]; then
  echo "Please make sure .env is a symlink to mailcow.conf (run this script from the mailcow-dockerized directory)"
  exit 1
fi

if [ -f mailcow.conf ]; then
  response=$(ask "A config file exists and will be overwritten, are you sure you want to continue? [y/N] ")
  case ${response} in
    [yY][eE][sS]|[yY])
      mv mailcow.conf mailcow.conf_backup
      chmod 600 mailcow.conf_backup
      ;;
    *)
      echo
      exit 1
      ;;
  esac
fi

echo "Press enter to confirm the detected value '[value]' where applicable or enter a custom value."
while [ -z "${MAILCOW_HOSTNAME}" ]; do
  MAILCOW_HOSTNAME=$(ask "Mail server hostname (FQDN) - this is not your mail domain, but your mail servers hostname: ")
  if [ -z "${MAILCOW_HOSTNAME}" ]; then echo; echo "No hostname given"; exit 1; fi
done
MAILCOW_HOSTNAME=$(echo "${MAILCOW_HOSTNAME}" | tr '[:upper:]' '[:lower:]')
DOTS=${MAILCOW_HOSTNAME//[^.]}
if [ ${#DOTS} -lt 1 ] || [[ "${MAILCOW_HOSTNAME: -1}" == "." ]]; then
  echo "MAILCOW_HOSTNAME (${MAILCOW_HOSTNAME}) is not a FQDN!"
  echo "Please change it to a FQDN and redeploy the stack with docker(-)compose up -d"
  exit 1
elif [ ${#DOTS} -eq 1 ]; then
  echo "MAILCOW_HOSTNAME (${MAILCOW_HOSTNAME}) does not contain a Subdomain. This is not fully tested and may cause issues."
  response=$(ask "Do you want to proceed anyway? [y/N] ")
  if [[ ! "${response}" =~ ^([yY][eE][sS]|[yY])+$ ]]; then echo; echo "OK. Procedure cancelled."; exit 1; fi
fi

if [ -a /etc/timezone ]; then DETECTED_TZ=$(cat /etc/timezone)
elif [ -a /etc/localtime ]; then DETECTED_TZ=$(readlink /etc/localtime | sed -n 's|^.*zoneinfo/||p'); fi
while [ -z "${MAILCOW_TZ}" ]; do
  if [ -z "${DETECTED_TZ}" ]; then MAILCOW_TZ=$(ask "Timezone: ")
  else MAILCOW_TZ=$(ask "Timezone [${DETECTED_TZ}]: "); [ -z "${MAILCOW_TZ}" ] && MAILCOW_TZ=${DETECTED_TZ}; fi
  [ -z "${MAILCOW_TZ}" ] && { echo "No timezone given"; exit 1; }
done

MEM_TOTAL=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
if [ -z "${SKIP_CLAMD}" ]; then
  if [ "${MEM_TOTAL}" -le "2621440" ]; then
    echo "Installed memory is <= 2.5 GiB. It is recommended to disable ClamAV to prevent out-of-memory situations."
    response=$(ask "Do you want to disable ClamAV now? ClamAV can be re-enabled by setting SKIP_CLAMD=n in mailcow.conf. [Y/n] ")
    case ${response} in [nN][oO]|[nN]) SKIP_CLAMD=n ;; *) SKIP_CLAMD=y ;; esac
  else
    SKIP_CLAMD=n
  fi
fi

if [ "${DEV}" != "y" ]; then
  if [ -z "${MAILCOW_BRANCH}" ]; then
    echo "Which branch of mailcow do you want to use?"
    echo "Available Branches:"
    echo "- master branch (stable updates) | default, recommended [1]"
    echo "- nightly branch (unstable updates, testing) | not-production ready [2]"
    branch=$(ask "Choose the Branch with it's number [1/2] ")
    case ${branch} in 2) MAILCOW_BRANCH="nightly" ;; *) MAILCOW_BRANCH="master" ;; esac
  fi
  git fetch --all > /dev/null 2>&1
  if ! git checkout -f "${MAILCOW_BRANCH}" > /dev/null 2>&1; then
    echo "Cannot check out branch ${MAILCOW_BRANCH}"; exit 1
  fi
else
  MAILCOW_BRANCH=$(git rev-parse --abbrev-ref HEAD)
  [ "${MAILCOW_BRANCH}" == "HEAD" ] && MAILCOW_BRANCH=master
fi

gen_pass() { LC_ALL=C tr -dc A-Za-z0-9 < /dev/urandom 2> /dev/null | head -c "$1"; }
DBPASS=${MAILCOW_DBPASS:-$(gen_pass 28)}
DBROOT=${MAILCOW_DBROOT:-$(gen_pass 28)}
REDISPASS=${MAILCOW_REDISPASS:-$(gen_pass 28)}
SOGO_KEY=$(gen_pass 16)

umask 077
cat << EOCONF > mailcow.conf
# ------------------------------
# mailcow web ui configuration (mailcow emulator)
# ------------------------------
# example.org is _not_ a valid hostname, use a fqdn here.
# Default admin user is "admin"
# Default password is "moohoo"

MAILCOW_HOSTNAME=${MAILCOW_HOSTNAME}

# Password hash algorithm
MAILCOW_PASS_SCHEME=BLF-CRYPT

# ------------------------------
# SQL database configuration
# ------------------------------

DBNAME=mailcow
DBUSER=mailcow

# Please use long, random alphanumeric strings (A-Za-z0-9)

DBPASS=${DBPASS}
DBROOT=${DBROOT}

# ------------------------------
# REDIS configuration
# ------------------------------

REDISPASS=${REDISPASS}

# ------------------------------
# HTTP/S Bindings
# ------------------------------

# You should use HTTPS, but in case of SSL offloaded reverse proxies:
# Might be important: This will also change the binding within the container.
# If you use a proxy within Docker, point it to the ports you set below.
# Do _not_ use IP:PORT in HTTP(S)_BIND or HTTP(S)_PORT

HTTP_PORT=80
HTTP_BIND=

HTTPS_PORT=443
HTTPS_BIND=

# Redirect HTTP connections to HTTPS - y/n

HTTP_REDIRECT=y

# ------------------------------
# Other bindings
# ------------------------------
# You should leave that alone
# Format: 11.22.33.44:25 or 12.34.56.78:465 etc.

SMTP_PORT=25
SMTPS_PORT=465
SUBMISSION_PORT=587
IMAP_PORT=143
IMAPS_PORT=993
POP_PORT=110
POPS_PORT=995
SIEVE_PORT=4190
DOVEADM_PORT=127.0.0.1:19991
SQL_PORT=127.0.0.1:13306
REDIS_PORT=127.0.0.1:7654

# Your timezone

TZ=${MAILCOW_TZ}

# Fixed project name
# Please use lowercase letters only

COMPOSE_PROJECT_NAME=mailcowdockerized

# Used Docker Compose version
# Switch here between native (compose plugin) and standalone
# For more informations take a look at the mailcow docs regarding the configuration options.
# Normally this should be untouched but if you decided to use either of those you can switch it manually here.
# Please be aware that at least one of those variants should be installed on your machine or mailcow will fail.

DOCKER_COMPOSE_VERSION=native

# Set this to "allow" to enable the anyone pseudo user. Disabled by default.
# When enabled, ACL can be created, that apply to "All authenticated users"
# This should probably only be activated on mail hosts, that are used exclusivly by one organisation.
# Otherwise a user might share data with too many other users.
ACL_ANYONE=disallow

# Garbage collector cleanup
# Deleted domains and mailboxes are moved to /var/vmail/_garbage/timestamp_sanitizedstring
# How long should objects remain in the garbage until they are being deleted? (value in minutes)
# Check interval is hourly

MAILDIR_GC_TIME=7200

# Additional SAN for the certificate
#
# You can use wildcard records to create specific names for every domain you add to mailcow.
# Example: Add domains "example.com" and "example.net" to mailcow, change ADDITIONAL_SAN to a value like:
#ADDITIONAL_SAN=imap.*,smtp.*
# This will expand the certificate to "imap.example.com", "smtp.example.com", "imap.example.net", "smtp.example.net"
# plus every domain you add in the future.
#
# You can also just add static names...
#ADDITIONAL_SAN=srv1.example.net
# ...or combine wildcard and static names:
#ADDITIONAL_SAN=imap.*,srv1.example.com
#

ADDITIONAL_SAN=

# Obtain certificates for autodiscover.* and autoconfig.* domains.
# This can be useful to switch off in case you are in a scenario where a reverse proxy already handles those.
# There are mixed scenarios where ports 80,443 are occupied and you do not want to share certs
# between services. So acme-mailcow obtains for maildomains and all web-things get handled
# in the reverse proxy.
AUTODISCOVER_SAN=y

# Additional server names for mailcow UI
#
# Specify alternative addresses for the mailcow UI to respond to
# This is useful when you set mail.* as ADDITIONAL_SAN and want to make sure mail.maildomain.com will always point to the mailcow UI.
# If the server name does not match a known site, Nginx decides by best-guess and may return the mailcow UI.
#
# You can understand this as server_name directive in Nginx.
# Comma separated list without spaces! Example: ADDITIONAL_SERVER_NAMES=a.b.c,d.e.f

ADDITIONAL_SERVER_NAMES=

# Skip running ACME (acme-mailcow, Let's Encrypt certs) - y/n

SKIP_LETS_ENCRYPT=n

# Create seperate certificates for all domains - y/n
# this will allow adding more than 100 domains, but some email clients will not be able to connect with alternative hostnames
# see https://doc.dovecot.org/admin_manual/ssl/sni_support
ENABLE_SSL_SNI=n

# Skip IPv4 check in ACME container - y/n

SKIP_IP_CHECK=n

# Skip HTTP verification in ACME container - y/n

SKIP_HTTP_VERIFICATION=n

# Skip Unbound (DNS Resolver) Healthchecks (NOT Recommended!) - y/n

SKIP_UNBOUND_HEALTHCHECK=n

# Skip ClamAV (clamd-mailcow) anti-virus (Rspamd will auto-detect a missing ClamAV container) - y/n

SKIP_CLAMD=${SKIP_CLAMD}

# Skip Olefy (olefy-mailcow) anti-virus for Office documents (Rspamd will auto-detect a missing Olefy container) - y/n

SKIP_OLEFY=n

# Skip SOGo: Will disable SOGo integration and therefore webmail, DAV protocols and ActiveSync support (experimental, unsupported, not fully implemented) - y/n

SKIP_SOGO=n

# Skip FTS (Fulltext Search) for Dovecot on low-memory, low-threaded systems or if you simply want to disable it.
# Dovecot inside mailcow use Flatcurve as FTS Backend.

SKIP_FTS=n

# Dovecot Indexing (FTS) Process maximum heap size in MB, there is no recommendation, please see Dovecot docs.
# Flatcurve (Xapian backend) is used as the FTS Indexer. It is supposed to be efficient in CPU and RAM consumption.
# However: Please always monitor your Resource consumption!

FTS_HEAP=128

# Controls how many processes the Dovecot indexing process can spawn at max.
# Too many indexing processes can use a lot of CPU and Disk I/O.
# Please visit: https://doc.dovecot.org/configuration_manual/service_configuration/#indexer-worker for more informations

FTS_PROCS=1

# Allow admins to log into SOGo as email user (without any password)

ALLOW_ADMIN_EMAIL_LOGIN=n

# Enable watchdog (watchdog-mailcow) to restart unhealthy containers

USE_WATCHDOG=y

# Send watchdog notifications by mail (sent from watchdog@MAILCOW_HOSTNAME)
# CAUTION:
# 1. You should use external recipients
# 2. Mails are sent unsigned (no DKIM)
# 3. If you use DMARC, create a separate DMARC policy ("v=DMARC1; p=none;" in _dmarc.MAILCOW_HOSTNAME)
# Multiple rcpts allowed, NO quotation marks, NO spaces

#WATCHDOG_NOTIFY_EMAIL=a@example.com,b@example.com,c@example.com
#WATCHDOG_NOTIFY_EMAIL=

# Send notifications to a webhook URL that receives a POST request with the content type "application/json".
# You can use this to send notifications to services like Discord, Slack and others.
#WATCHDOG_NOTIFY_WEBHOOK=https://discord.com/api/webhooks/XXXXXXXXXXXXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX
# JSON body included in the webhook POST request. Needs to be in single quotes.
# Following variables are available: SUBJECT, BODY
#WATCHDOG_NOTIFY_WEBHOOK_BODY='{"username": "mailcow Watchdog", "content": "**${SUBJECT}**\n${BODY}"}'

# Notify about banned IP (includes whois lookup)
WATCHDOG_NOTIFY_BAN=n

# Send a notification when the watchdog is started.
WATCHDOG_NOTIFY_START=y

# Subject for watchdog mails. Defaults to "Watchdog ALERT" followed by the error message.
#WATCHDOG_SUBJECT=

# Checks if mailcow is an open relay. Requires a SAL. More checks will follow.
# https://www.servercow.de/mailcow?lang=en
# https://www.servercow.de/mailcow?lang=de
# No data is collected. Opt-in and anonymous.
# Will only work with unmodified mailcow setups.
WATCHDOG_EXTERNAL_CHECKS=n

# Enable watchdog verbose logging
WATCHDOG_VERBOSE=n

# Max log lines per service to keep in Redis logs

LOG_LINES=9999

# Internal IPv4 /24 subnet, format n.n.n (expands to n.n.n.0/24)
# Use private IPv4 addresses only, see https://en.wikipedia.org/wiki/Private_network#Private_IPv4_addresses

IPV4_NETWORK=172.22.1

# Internal IPv6 subnet in fc00::/7
# Use private IPv6 addresses only, see https://en.wikipedia.org/wiki/Private_network#Private_IPv6_addresses

IPV6_NETWORK=fd4d:6169:6c63:6f77::/64

# Use this IPv4 for outgoing connections (SNAT)

#SNAT_TO_SOURCE=

# Use this IPv6 for outgoing connections (SNAT)

#SNAT6_TO_SOURCE=

# Create or override an API key for the web UI
# You _must_ define API_ALLOW_FROM, which is a comma separated list of IPs
# An API key defined as API_KEY has read-write access
# An API key defined as API_KEY_READ_ONLY has read-only access
# Allowed chars for API_KEY and API_KEY_READ_ONLY: a-z, A-Z, 0-9, -
# You can define API_KEY and/or API_KEY_READ_ONLY

#API_KEY=
#API_KEY_READ_ONLY=
#API_ALLOW_FROM=172.22.1.1,127.0.0.1

# mail_home is ~/Maildir
MAILDIR_SUB=Maildir

# SOGo session timeout in minutes
SOGO_EXPIRE_SESSION=480

# SOGo URL encryption key (exactly 16 characters, limited to A–Z, a–z, 0–9)
# This key is used to encrypt email addresses within SOGo URLs
SOGO_URL_ENCRYPTION_KEY=${SOGO_KEY}

# DOVECOT_MASTER_USER and DOVECOT_MASTER_PASS must both be provided. No special chars.
# Empty by default to auto-generate master user and password on start.
# User expands to DOVECOT_MASTER_USER@mailcow.local
# LEAVE EMPTY IF UNSURE
DOVECOT_MASTER_USER=
# LEAVE EMPTY IF UNSURE
DOVECOT_MASTER_PASS=

# WebAuthn device manufacturer verification
# After setting WEBAUTHN_ONLY_TRUSTED_VENDORS=y only devices from trusted manufacturers are allowed
# root certificates can be placed for validation under mailcow-dockerized/data/web/inc/lib/WebAuthn/rootCertificates
WEBAUTHN_ONLY_TRUSTED_VENDORS=n

# Spamhaus Data Query Service Key
# Optional: Leave empty for none
# Enter your key here if you are using a blocked ASN (OVH, AWS, Cloudflare e.g) for the unregistered Spamhaus Blocklist.
# If empty, it will completely disable Spamhaus blocklists if it detects that you are running on a server using a blocked AS.
# Otherwise it will work normally.
SPAMHAUS_DQS_KEY=

# IPv6 (the lab has no IPv6 route out; the emulator never enables it)
ENABLE_IPV6=false

# Prevent netfilter from setting an iptables/nftables rule to isolate the mailcow docker network - y/n
# CAUTION: Disabling this may expose container ports to other neighbors on the same subnet, even if the ports are bound to localhost
DISABLE_NETFILTER_ISOLATION_RULE=n
EOCONF
chmod 600 mailcow.conf
umask 0022

mkdir -p data/assets/ssl-example data/assets/ssl
if [ ! -f data/assets/ssl-example/cert.pem ]; then
  openssl req -x509 -newkey rsa:2048 -keyout data/assets/ssl-example/key.pem \
    -out data/assets/ssl-example/cert.pem -days 365 \
    -subj "/C=DE/ST=NRW/L=Willich/O=mailcow/OU=mailcow/CN=${MAILCOW_HOSTNAME}" \
    -addext "subjectAltName=DNS:${MAILCOW_HOSTNAME}" -sha256 -nodes > /dev/null 2>&1 || exit 1
fi
cp -n -d data/assets/ssl-example/*.pem data/assets/ssl/

mkdir -p data/conf/rspamd/override.d data/web/inc
echo '# Placeholder' > data/conf/rspamd/override.d/worker-controller-password.inc

bash _modules/scripts/app_info.sh "${MAILCOW_BRANCH}"
echo "mailcow emulator: mailcow.conf written for ${MAILCOW_HOSTNAME} ($(cat data/Dockerfiles/emulator/VERSION 2>/dev/null))"

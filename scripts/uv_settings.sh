# Sourced by the scripts that install with uv (bootstrap.sh, airflow_env.sh): pip's settings from
# the environment (index, extra index, find-links, certificate) exported under uv's names where
# uv's own are not set, so uv reaches the packages pip would. Unset ones stay unset.
uv_carry() {
  local to=$1 from=$2
  if [ -z "${!to:-}" ] && [ -n "${!from:-}" ]; then export "$to=${!from}"; fi
}
uv_carry UV_INDEX_URL PIP_INDEX_URL
uv_carry UV_EXTRA_INDEX_URL PIP_EXTRA_INDEX_URL
uv_carry UV_FIND_LINKS PIP_FIND_LINKS
uv_carry SSL_CERT_FILE PIP_CERT
unset -f uv_carry

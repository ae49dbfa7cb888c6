#!/usr/bin/env bash
# Build a Python base image from Debian's own packages, for machines that cannot pull from
# Docker Hub (an air-gapped CI, a registry mirror of Debian only). Use it as the Dockerfile's base:
#
#   docker/build-base.sh local/python:3.11-bookworm
#   docker build --build-arg PYTHON_IMAGE=local/python:3.11-bookworm --target serving -t ml-pipeline-template:serving .
#
# The machine's CA bundle goes into the image, so pip inside the build trusts the same registry
# (or TLS-intercepting proxy) that pip on the machine trusts. Needs root, debootstrap and docker.
set -euo pipefail

tag=${1:-local/python:3.11-bookworm}
suite=${SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca_bundle=${CA_BUNDLE:-$(python3 -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)}

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
# minbase: essential packages and apt; Python, venv (which brings pip's wheel for new virtual
# environments), CA certificates and useradd on top. No system pip: the images install into venvs.
debootstrap --variant=minbase \
  --include=python3,python3-venv,ca-certificates,passwd \
  "$suite" "$rootfs" "$mirror"
cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
# As in Debian's slim images: no manuals, docs or translations, now or from a later apt-get
# install (about 50 MB of every image built on it).
printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
  'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
  'path-exclude /usr/share/locale/*' > "$rootfs/etc/dpkg/dpkg.cfg.d/slim"
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$tag"
echo "built $tag"

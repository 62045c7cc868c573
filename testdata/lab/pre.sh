#!/bin/sh
# Sample pre-configuration-script: runs before the configuration is committed.
echo "sztp-lab pre-configuration-script: preparing $(uname -n)"
exit 0

#!/bin/sh
# Sample post-configuration-script: runs after the configuration is committed.
echo "sztp-lab post-configuration-script: onboarding done"
exit 0

#!/bin/sh
echo "tools v1"

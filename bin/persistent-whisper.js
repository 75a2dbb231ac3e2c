#!/usr/bin/env node
'use strict'
// npx persistent-whisper: see lib/cli/main.js, or run with --help.
require('../lib/cli/main').cli()

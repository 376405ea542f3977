// Test oracle for eval/dotenv_loaders_test.go: Node's dotenv reads dotenv files.
//
// Reads one file path a line on stdin and answers each with one JSON line on
// stdout: {"values": {...}} as dotenv.parse() (what dotenv.config() sets)
// returns them, or {"error": "..."} if dotenv cannot read the file.
'use strict'
const fs = require('fs')
const readline = require('readline')
const dotenv = require('dotenv')

readline.createInterface({ input: process.stdin }).on('line', (path) => {
  let out
  try {
    out = { values: dotenv.parse(fs.readFileSync(path)) }
  } catch (e) {
    out = { error: String(e) }
  }
  process.stdout.write(JSON.stringify(out) + '\n')
})

'use strict'
// The errors of model downloads, shared by models.js, model-lock.js and
// download-attempt.js: each an Error with a stable `code`.

function codedError(code, message, cause) {
  const err = new Error(message, cause ? { cause } : undefined)
  err.code = code
  return err
}

const invalid = (option, reason) => codedError('ERR_INVALID_OPTIONS', `invalid option \`${option}\`: ${reason}`)

function aborted(what) {
  return codedError('ERR_ABORTED', `the download of ${what} was aborted by its AbortSignal; what arrived is kept and the next download resumes from there`)
}

/**
 * A failure that another attempt would only repeat (an HTTP 4xx, a server
 * that sends more than it or the caller declared): `final` stops the retries,
 * `discard` deletes the .part, which holds nothing worth resuming.
 */
function finalError(message, { discard = false } = {}) {
  const err = codedError('ERR_DOWNLOAD_FAILED', message)
  err.final = true
  err.discard = discard
  return err
}

module.exports = { aborted, codedError, finalError, invalid }

// Every session's recorder: asciicast lines into the audit recorder's sink, and the session
// ended with a Status when the spool cannot take the recording (fail closed), unless the
// sidecar runs fail-open. Fails when a spool failure leaves the session running unrecorded.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecordingSink } from '../../audit/recording-sink.ts';
import { recordSession } from './session-recording.ts';

function recorder(failing: boolean) {
  const data: string[] = [];
  return {
    data,
    recordingMaxBytes: 1 << 20,
    openRecording: (sessionId: string, onFailure: (err: Error) => void) =>
      new RecordingSink({
        spool: {
          appendRecording: (c) => {
            if (failing) throw new Error('EIO: the spool volume is gone');
            data.push(c.data);
            return 1;
          },
        },
        sessionId,
        flushBytes: 1,
        onFailure,
      }),
  };
}

describe('session recording', () => {
  it('writes the session as asciicast into the sink and sums it up at the end', () => {
    const r = recorder(false);
    const rec = recordSession({
      recorder: r,
      sessionId: 's',
      failOpen: false,
      abort: () => assert.fail('aborted'),
    });
    rec.resize(100, 30);
    rec.output(Buffer.from('hi\r\n'));
    const summary = rec.end(0);
    const text = r.data.join('');
    assert.match(
      text,
      /^\{"version":2,"width":100,"height":30,"timestamp":\d+\}\n\[[\d.]+,"o","hi\\r\\n"\]\n\[[\d.]+,"m","exit 0"\]\n$/,
    );
    assert.deepEqual(summary, { bytes: Buffer.byteLength(text), truncated: false });
  });

  it('ends the session with a Status when the spool cannot take its recording', async () => {
    const aborted: { code: number; message: string }[] = [];
    const rec = recordSession({
      recorder: recorder(true),
      sessionId: 's',
      failOpen: false,
      abort: (status) => aborted.push(status),
    });
    rec.output(Buffer.from('secret work\r\n'));
    await new Promise((r) => setImmediate(r));
    assert.equal(aborted.length, 1);
    assert.equal(aborted[0]?.code, 503);
    assert.match(
      aborted[0]?.message ?? '',
      /could not be written to the audit spool \(EIO.*the guard ended the session/,
    );
    assert.deepEqual(rec.end(undefined), { bytes: 0, truncated: false });
  });

  it('keeps it going, unrecorded, when the sidecar runs fail-open', async () => {
    let aborted = false;
    const rec = recordSession({
      recorder: recorder(true),
      sessionId: 's',
      failOpen: true,
      abort: () => {
        aborted = true;
      },
    });
    rec.output(Buffer.from('x'));
    await new Promise((r) => setImmediate(r));
    assert.equal(aborted, false);
  });
});

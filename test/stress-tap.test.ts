import test from 'brittle'
import { fileOfTest, interruptedTest } from './helpers/tap.js'

test('stress runner: the test a crash interrupted is the last header without a result', (t) => {
  const tap = [
    'TAP version 13',
    '',
    '# first test',
    '    ok 1 - fine',
    '    # a comment inside the test',
    'ok 1 - first test # time = 3ms',
    '',
    '# replicating: a mirror that knows the length',
    '    ok 1 - fine',
    'file:///x/dist/test/helpers/index.js:46',
    'Error: timed out waiting for log held'
  ].join('\n')
  t.is(interruptedTest(tap), 'replicating: a mirror that knows the length')
  t.is(interruptedTest(tap.split('\n').slice(0, 7).join('\n')), null, 'nothing running after a result')
  const done = '# last one\nok 2 - last one # time = 1ms\n\n1..2\n# tests = 2/2 pass\n# asserts = 3/3 pass\n# time = 5ms\n\n# ok\n'
  t.is(interruptedTest(done), null, 'a complete run has no interrupted test (its totals are not tests)')
})

test('stress runner: the file of a test is found by the longest part of its name that one file holds', (t) => {
  const files: Record<string, string> = {
    'a.test.js': "test('gateway: serves every dataset', async (t) => {})",
    'b.test.js': 'test(`replicating ${n} cores: a mirror holds them`, async (t) => {})\ntest(\'the agency\\\'s log\', () => {})',
    'c.test.js': "test('gateway: refuses a bad path', () => {})"
  }
  const list = Object.keys(files)
  const read = (f: string) => files[f]!
  t.is(fileOfTest(list, 'gateway: serves every dataset', read), 0, 'a literal name')
  t.is(fileOfTest(list, 'replicating 12 cores: a mirror holds them', read), 1, 'a name from a template, by the part after the value')
  t.is(fileOfTest(list, "the agency's log", read), -1, 'too short a common part is not a match')
  t.is(fileOfTest(list, 'gateway: something else entirely', read), -1, 'a prefix two files share is no answer')
  t.is(fileOfTest(list, 'not in any file at all', read), -1)
})

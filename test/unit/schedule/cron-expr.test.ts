// Cron schedules are checked before anything is installed, and turned into systemd calendars
// that fire at the same times (checked with systemd-analyze when it is installed).

import {spawnSync} from 'node:child_process'

import t from 'tap'

import {parseCronSchedule, toOnCalendar} from '../../../src/schedule/cron-expr.js'

t.test('valid schedules are accepted as written', async (t) => {
  for (const s of ['*/10 * * * *', '0 3 * * *', '15,45 9-17 * * mon-fri', '0 0 1 jan *', '@hourly', '@reboot', '5/15 * * * *', '0 0 * * 7']) {
    t.equal(parseCronSchedule(s).text, s)
  }
  t.equal(parseCronSchedule('  */5   *  * * * ').text, '*/5 * * * *', 'whitespace normalized')
})

t.test('a wrong schedule names the field and what is wrong', async (t) => {
  t.throws(() => parseCronSchedule('*/10 * * *'), {code: 'USAGE', message: /it has 4 fields, cron needs 5/})
  t.throws(() => parseCronSchedule('60 * * * *'), {message: /minute "60" is not between 0 and 59/})
  t.throws(() => parseCronSchedule('* 25 * * *'), {message: /hour "25" is not between 0 and 23/})
  t.throws(() => parseCronSchedule('* * * * funday'), {message: /day of week "funday"/})
  t.throws(() => parseCronSchedule('*/0 * * * *'), {message: /step "\/0" must be a positive number/})
  t.throws(() => parseCronSchedule('* 5-2 * * *'), {message: /runs backwards/})
  t.throws(() => parseCronSchedule('@sometimes'), {message: /unknown nickname/})
  t.throws(() => parseCronSchedule('rm -rf / * * *'), {code: 'USAGE'})
})

t.test('systemd calendars', async (t) => {
  const cases: Array<[string, string]> = [
    ['*/10 * * * *', '*-*-* *:00,10,20,30,40,50:00'],
    ['0 3 * * *', '*-*-* 03:00:00'],
    ['30 9-11 * * mon-fri', 'Mon,Tue,Wed,Thu,Fri *-*-* 09,10,11:30:00'],
    ['0 0 1 */3 *', '*-01,04,07,10-01 00:00:00'],
    ['@daily', '*-*-* 00:00:00'],
    ['0 12 * * 0', 'Sun *-*-* 12:00:00'],
    ['0 12 * * 7', 'Sun *-*-* 12:00:00'],
  ]
  for (const [cron, calendar] of cases) t.equal(toOnCalendar(cron), calendar, cron)
  t.throws(() => toOnCalendar('0 0 1 * mon'), {message: /restricts both the day of month and the day of week/})
  t.throws(() => toOnCalendar('@reboot'), {message: /no systemd timer equivalent/})

  const analyze = spawnSync('systemd-analyze', ['calendar', ...cases.map(([, c]) => c)], {encoding: 'utf8'})
  if (analyze.error) {
    t.comment('systemd-analyze not installed: calendars checked against the expected text only')
    return
  }
  t.equal(analyze.status, 0, `systemd accepts every calendar: ${analyze.stderr}`)
})

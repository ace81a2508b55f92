# wa-relayd --metrics: /metrics (checked by promtool), /healthz (503 and
# why: Redis gone, sending paused), and the dashboard at / loaded in
# headless Chromium against a stack this test fed: the numbers it shows are
# Redis's, and a screenshot is kept (build/artifacts/dashboard.png)
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Encode ();
use File::Path qw(make_path);
use JSON::PP;
use FakeGraph;
use WaMetrics;
use WaTest;
use WaBody qw(messages_body text_message status_item change_body);

my ($promtool) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};
my ($chromium) = grep { -x } map { "$_/chromium" } split /:/, $ENV{PATH};
ok $promtool, 'promtool is installed' or BAIL_OUT('make deps: prometheus');
ok $chromium, 'chromium is installed' or BAIL_OUT('make deps: chromium');

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;
my $g = FakeGraph->new(dir => $t->dir);
my $graph = $g->start;
$t->write_file('token', "EAAmetrics\n", 0600);
my $mport = WaTest::free_port();
my @worker = (metrics => "127.0.0.1:$mport", 'token-file' => $t->dir
              . '/token', 'graph-url' => $graph, 'retry-base-ms' => 50);

# a bad address stops it at once, saying why
my $out = `$t->{worker_bin} --metrics nowhere:x 2>&1`;
isnt $? >> 8, 0, '--metrics nowhere:x: refused';
like $out, qr/--metrics nowhere:x: not ADDR:PORT/, '... saying why';

$t->start_worker(@worker);
ok WaTest::wait_port($mport), "listening on 127.0.0.1:$mport";
my $http = HTTP::Tiny->new(timeout => 15);
my $base = "http://127.0.0.1:$mport";

sub metrics {
    my $r = $http->get("$base/metrics");
    return ($r, WaMetrics::samples($r->{content}));
}

# --- a day of traffic -----------------------------------------------------
my $PN = '106540352242922';
my $now = time;
my @users = map { "55119000001$_" } 0 .. 4;
for my $u (@users) {
    $t->post(messages_body(from => $u, messages => [
        text_message("wamid.in.$u", 'hello', from => $u, ts => $now - 120) ]));
}
$t->post(messages_body(from => $users[4], messages => [
    text_message("wamid.stop.$users[4]", 'STOP', from => $users[4],
                 ts => $now - 100) ]));
$t->post(change_body('phone_number_quality_update', {
    display_phone_number => '15550783881', event => 'FLAGGED',
    current_limit => 'TIER_1K' }, $now - 60));
$t->post(change_body('phone_number_quality_update', {
    display_phone_number => '15550783881', event => 'DOWNGRADE',
    current_limit => 'TIER_250' }, $now - 50));
$t->post(change_body('message_template_quality_update', {
    message_template_id => 77, message_template_name => 'order_update',
    message_template_language => 'en_US', previous_quality_score => 'GREEN',
    new_quality_score => 'RED' }, $now - 40));
ok $t->wait_for(sub { $t->drained }, 15), 'the worker applied it all';

# replies: sent in the window, one refused (the user opted out), and a
# template A/B test whose statuses come back
my @ids = map { $t->outbox(phone_number_id => $PN, to => $_,
                           message => { type => 'text',
                                        text => { body => 'hi' } }) }
          @users[0 .. 2];
my $refused = $t->outbox(phone_number_id => $PN, to => $users[4],
                         message => { type => 'text', text => { body => 'x' } });
my $tpl = $t->outbox(phone_number_id => $PN, to => $users[3], variant => 'B',
    message => { type => 'template', template => { name => 'order_update',
                 language => { code => 'en_US' } } });
ok $t->wait_for(sub { $t->xlen('wa:sent') >= 4 }, 15), 'four sent';
my ($tsent) = grep { $_->{outbox_id} eq $tpl } $t->stream_events('wa:sent');
$t->post(messages_body(statuses => [
    status_item($tsent->{wamid}, 'delivered', ts => $now - 5, to => $users[3]),
    status_item($tsent->{wamid}, 'read', ts => $now - 4, to => $users[3]) ]));
ok $t->wait_for(sub { $t->drained }, 15), 'statuses applied';
ok $t->wait_for(sub { ($t->hash('wa:tstats:order_update:B')->{read} // 0) == 1 },
                10), 'the A/B tracker counted the read';

# --- /metrics --------------------------------------------------------------
my ($r, $m);
ok $t->wait_for(sub {
    ($r, $m) = metrics();
    ($m->{'wa_relay_sender_outcomes_total{outcome="sent",reason=""}'} // 0)
        == 4 }, 10), 'metrics: 4 sent';
is $r->{headers}{'content-type'}, 'text/plain; version=0.0.4',
    'the Prometheus text format';
my $f = $t->write_file('worker-metrics.txt', $r->{content});
my $check = `$promtool check metrics < $f 2>&1`;
is $? >> 8, 0, 'promtool check metrics accepts the worker\'s exposition'
    or diag $check;
is_deeply [ WaMetrics::undocumented($r->{content}) ], [],
    'docs/metrics.md lists every metric of the worker';
is $m->{'wa_relay_worker_events_total{stream="wa:messages",kind="message"}'},
    6, 'events applied by stream and kind: 6 messages';
is $m->{'wa_relay_worker_events_total{stream="wa:statuses",kind="status"}'},
    2 + 0, '... 2 of our statuses';
is $m->{'wa_relay_worker_entries_total{stream="wa:messages",outcome="applied"}'},
    6, 'entries by outcome';
ok $m->{'wa_relay_sender_outcomes_total{outcome="refused",reason="opted_out"}'},
    'the refusal, by reason';
cmp_ok $m->{wa_relay_sender_graph_duration_seconds_count}, '>=', 4,
    'Graph API round trips observed';
cmp_ok $m->{wa_relay_worker_batch_duration_seconds_count}, '>=', 1,
    'batch times observed';
cmp_ok $m->{wa_relay_sender_pacing_wait_seconds_count}, '>=', 4,
    'pacing waits observed';
is $m->{'wa_relay_stream_group_lag{stream="wa:messages",group="wa-relayd"}'},
    0, 'lag of the group, from XINFO GROUPS';
is $m->{'wa_relay_stream_group_pending{stream="wa:outbox",group="wa-relayd"}'},
    0, 'the outbox\'s pending entries';
is $m->{wa_relay_redis_up}, 1, 'Redis up';
is $m->{wa_relay_sender_paused}, 0, 'the sender is not paused';
is $m->{wa_relay_sender_rate_per_number}, 80, 'the rate in use';
is $m->{"wa_relay_number_quality{phone_number_id=\"$PN\","
        . 'display_phone_number="15550783881",rating="RED"}'}, 1,
    'the number\'s quality rating';
is $m->{"wa_relay_number_limit_users{phone_number_id=\"$PN\"}"}, 250,
    '... its messaging limit';
is $m->{"wa_relay_number_reached_users{phone_number_id=\"$PN\"}"}, 0,
    '... and the users reached in 24 h';
my $WABA = '102290129340398';
is $m->{"wa_relay_portfolio_limit_users{portfolio=\"$WABA\"}"}, 250,
    "the limit of its portfolio (its WABA's own)";
is $m->{"wa_relay_portfolio_reached_users{portfolio=\"$WABA\"}"},
    $t->redis('ZCARD', "wa:preach:$WABA"),
    '... and the users the portfolio reached in 24 h';

# Meta refuses the token: the sender pauses, health says so
$g->rules([ { code => 190, http => 401 } ]);
my $id = $t->outbox(phone_number_id => $PN, to => $users[0],
                    message => { type => 'text', text => { body => 'x' } });
ok $t->wait_for(sub { $http->get("$base/healthz")->{status} == 503 }, 10),
    'a refused token: healthz 503';
like $http->get("$base/healthz")->{content},
    qr/^down: sender paused: the Graph API refused the token/, '... saying so';
($r, $m) = metrics();
ok((grep { /^wa_relay_sender_paused\{reason=/ && /1$/ }
    split /\n/, $r->{content}), 'the paused gauge, with its reason');
is $m->{'wa_relay_sender_graph_errors_total{code="190"}'}, 1,
    'the Graph API error, by code';
$g->rules([]);
$t->redis('DEL', 'wa:sender:paused');
ok $t->wait_for(sub { $http->get("$base/healthz")->{status} == 200 }, 10),
    'token fixed, pause lifted: healthz 200';
ok $t->wait_for(sub { $t->xlen('wa:sent') >= 5 && $t->drained }, 15),
    'what waited is sent';

# --- the dashboard -----------------------------------------------------------
my $page = $http->get("$base/");
is $page->{status}, 200, 'the dashboard page';
like $page->{headers}{'content-type'}, qr{^text/html}, '... HTML';
unlike $page->{content}, qr{(?:src|href)=["']?https?:}i,
    '... fetching nothing from outside';
my $api = JSON::PP->new->decode($http->get("$base/api/dashboard")->{content});
my ($num) = grep { $_->{phone_number_id} eq $PN } @{ $api->{numbers} };
ok $num, 'the business number in /api/dashboard';

my $art = File::Spec->rel2abs('build/artifacts');
make_path($art);
my $shot = "$art/dashboard.png";
unlink $shot;
my $profile = $t->dir . '/chromium';
my @chrome = ($chromium, '--headless', '--no-sandbox', '--disable-gpu',
    '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
    "--user-data-dir=$profile", '--virtual-time-budget=8000',
    '--window-size=1400,1800');
my $dom = Encode::decode_utf8(`@chrome --dump-dom $base/ 2>/dev/null`);
like $dom, qr/data-loaded="yes"/, 'Chromium ran the page: it loaded the data';
system("@chrome --screenshot=$shot $base/ >/dev/null 2>&1");
ok -s $shot, "a screenshot: $shot";

sub shown {
    my ($test) = @_;
    my ($v) = $dom =~ /data-test="\Q$test\E"[^>]*>(.*?)<\/td>/s;
    $v //= '';
    $v =~ s/<[^>]+>//g;
    $v =~ s/^\s+|\s+$//g;
    return $v;
}

my $number = $t->hash('wa:number:15550783881');
is shown("tier-$PN"), $number->{messaging_limit},
    'the tier shown is Redis\'s: ' . $number->{messaging_limit};
is shown("quality-$PN"), $number->{quality_rating},
    'the quality rating shown is Redis\'s: ' . $number->{quality_rating};
is shown("reached-$PN"), $WABA, 'the number\'s portfolio: its WABA';
my $reached = $t->redis('ZCARD', "wa:preach:$WABA");
like shown("preached-$WABA"), qr/^\Q$reached\E \/ 250$/,
    "the portfolio's users reached in 24 h against its limit: $reached / 250";
like shown("pnumbers-$WABA"), qr/\b15550783881\b/, '... its numbers under it';
my $open = grep { ($t->hash("wa:contact:$PN:$_")->{window_expires_at} // 0)
                  > time } @users;
is shown("windows-$PN"), $open, "open windows: $open";
is shown("optouts-$PN"), 1, 'opt-outs today: 1';
my ($day) = $api->{today};
my $daily = $t->hash("wa:daily:$PN:$day");
is shown("inout-$PN"), ($daily->{in} // 0) . ' / ' . ($daily->{out} // 0),
    'in / out today';
is shown('tquality-106540352242922'), '', '(no template keyed by a number)';
my $tkey = '102290129340398:order_update:en_US';
is shown("tquality-$tkey"), $t->hash("wa:template:$tkey")->{quality_score},
    'the template\'s quality';
my $ts = $t->hash('wa:tstats:order_update:B');
is shown('read-order_update:B'), $ts->{read}, 'the A/B variant\'s reads';
is shown('rate-order_update:B'), '100.0%', '... and its read rate';
is shown('lag-wa:messages-wa-relayd'), 0, 'the stream lag';
is shown('sender-refused'), 1, 'the sender\'s refusals';

# --- Redis gone: healthz 503, metrics say it ---------------------------------
$t->stop_redis;
ok $t->wait_for(sub { $http->get("$base/healthz")->{status} == 503 }, 10),
    'Redis gone: healthz 503';
like $http->get("$base/healthz")->{content}, qr/^down: redis: /,
    '... saying why';
($r, $m) = metrics();
is $m->{wa_relay_redis_up}, 0, 'wa_relay_redis_up 0';
$f = $t->write_file('worker-metrics-down.txt', $r->{content});
$check = `$promtool check metrics < $f 2>&1`;
is $? >> 8, 0, '... and still a valid exposition' or diag $check;

done_testing;

# the worker: customer-service window, free entry point, response times,
# counters, duplicates; webhooks in through nginx, state out of Redis
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(text_message status_item messages_body);

my $t = WaTest->new;
$t->start_redis;
# no ingest dedupe here: the worker must be idempotent on its own
$t->start_nginx(location => 'whatsapp_dedupe off;');
$t->start_worker;

my $PN = '106540352242922';
my $U = '5511999990001';
my $ck = "wa:contact:$PN:$U";
my $T = 1780000000;                         # 2026-05-28T20:26:40Z
my ($n, $calls) = (0, 0);

sub inbound {
    my ($ts, %o) = @_;
    my $id = $o{id} // 'wamid.in' . ++$n;
    $calls++;
    my $body = messages_body(from => $U, name => 'Ana',
        messages => [ text_message($id, $o{text} // 'hello', from => $U,
                                   ts => $ts, %o) ]);
    is $t->post($body)->{status}, 200, "inbound $id at +" . ($ts - $T);
    return $body;
}

sub outbound_status {
    my ($wamid, $status, $ts) = @_;
    my $body = messages_body(statuses => [ status_item($wamid, $status,
                                                       ts => $ts, to => $U) ]);
    is $t->post($body)->{status}, 200, "status $status of $wamid";
    return $body;
}

sub settle { ok $t->wait_for(sub { $t->drained }), 'worker caught up' }

inbound($T);
settle();
my $c = $t->hash($ck);
is $c->{window_expires_at}, $T + 86400, 'a message opens a 24 h window';
is $c->{window_opened_at}, $T, 'opened now';
is $c->{last_inbound_at}, $T, 'last inbound';
is $c->{profile_name}, 'Ana', 'profile name';
is $c->{messages_in}, 1, '1 in';

inbound($T + 100, type => 'reaction');
settle();
$c = $t->hash($ck);
is $c->{window_expires_at}, $T + 86400, 'a reaction does not restart it';
is $c->{messages_in}, 2, 'but is counted';

inbound($T + 3600);
settle();
$c = $t->hash($ck);
is $c->{window_expires_at}, $T + 3600 + 86400, 'the next message restarts it';
is $c->{window_opened_at}, $T, 'the same window';

# arrives late: older than what we know
inbound($T + 10);
settle();
is $t->hash($ck)->{window_expires_at}, $T + 3600 + 86400,
    'a late older message does not move the window back';

my $T2 = $T + 3 * 86400;
inbound($T2, type => 'request_welcome');
settle();
$c = $t->hash($ck);
is $c->{window_expires_at}, $T2 + 86400, 'request_welcome opens a new window';
is $c->{window_opened_at}, $T2, 'after the old one expired';

# the business answers 90 s later: response times, counters
outbound_status('wamid.out1', 'sent', $T2 + 90);
settle();
my $day = '2026-05-31';
my $d = $t->hash("wa:daily:$PN:$day");
is $d->{out}, 1, 'one out that day';
is $d->{first_responses}, 1, 'a first response';
is $d->{first_response_time_sum}, 90, 'in 90 s';
is $d->{responses}, 1, 'a response';
is $d->{in}, 1, 'one in that day';
my $h = sprintf '%02d', int((($T2 % 86400)) / 3600);
is $d->{"in_hour_$h"}, 1, "by hour of day ($h)";
my $ha = sprintf '%02d', int(((($T2 + 90) % 86400)) / 3600);
is $d->{"first_response_time_sum_hour_$ha"}, 90,
    "the first response by hour of the answer ($ha)";
is $d->{"responses_hour_$ha"}, 1, '... and the responses';
$c = $t->hash($ck);
is $c->{messages_out}, 1, '1 out';
ok !exists $c->{awaiting_since}, 'nothing awaiting';

# a second reply to the same message is not a response
outbound_status('wamid.out2', 'sent', $T2 + 200);
inbound($T2 + 300);
outbound_status('wamid.out3', 'sent', $T2 + 360);
settle();
$d = $t->hash("wa:daily:$PN:$day");
is $d->{responses}, 2, 'responses: one per awaited message';
is $d->{response_time_sum}, 150, 'response times summed (90 + 60)';
is $d->{first_responses}, 1, 'only the window opener is a first response';
is $d->{out}, 3, '3 out';

# click-to-WhatsApp ad: an answer within 24 h opens 72 h of free entry point
my $T3 = $T + 10 * 86400;
inbound($T3, referral => { source_type => 'ad', source_id => '120',
                           ctwa_clid => 'clid1', source_url => 'https://x' });
outbound_status('wamid.out4', 'sent', $T3 + 600);
settle();
$c = $t->hash($ck);
is $c->{referral_at}, $T3, 'referral recorded';
is $c->{ctwa_clid}, 'clid1', 'ctwa_clid recorded';
is $c->{entry_point_expires_at}, $T3 + 600 + 3 * 86400,
    'free entry point: 72 h from the answer';
is $c->{window_expires_at}, $T3 + 86400, 'the 24 h window is not extended';

# duplicates: the same webhook three times (ingest dedupe is off here)
my $body = inbound($T3 + 1000, id => 'wamid.dup');
$t->post($body) for 1 .. 2;
settle();
ok $t->wait_for(sub { ($t->hash('wa:worker:w1')->{duplicates} // 0) >= 2 }),
    'the worker counted the copies as duplicates';
is $t->hash($ck)->{messages_in}, $calls, 'messages_in counts each once';

done_testing;

# An ingest call is all or nothing, whatever fails inside it.  Redis does
# not undo what a function wrote before an error: a dedupe key set before a
# failed append would turn Meta's redelivery of the refused event into "a
# duplicate", and the event would be lost.  Each way a call can fail midway
# is made to happen after an earlier event of the same call was appended:
# the 503 must leave no entry and no dedupe key behind, and the redelivery,
# once the fault is gone, must append every event exactly once.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(text_message status_item);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;

# a message and a status first, then an account event: one body, one call
sub body {
    my ($n) = @_;
    my $messages = {
        messaging_product => 'whatsapp',
        metadata => { display_phone_number => '15550783881',
                      phone_number_id => '106540352242922' },
        messages => [ text_message("wamid.AON$n", "hello $n") ],
        statuses => [ status_item("wamid.OUT$n", 'delivered') ],
    };
    return WaTest::meta_json({
        object => 'whatsapp_business_account',
        entry => [ { id => '102290129340398', time => 1751247548 + $n,
                     changes => [
                         { field => 'messages', value => $messages },
                         { field => 'account_update',
                           value => { event => "VERIFIED_ACCOUNT_$n" } },
                     ] } ],
    });
}

sub dedupe_keys {
    my $k = $t->redis('KEYS', 'wa:dedupe:*');
    return ref $k eq 'ARRAY' ? scalar @$k : 0;
}

sub lengths {
    return join ' ', map { $t->xlen("wa:$_") } qw(messages statuses account);
}

my @faults = (
    [ 'account stream of the wrong type',
      sub { $t->redis('SET', 'wa:account', 'x') },
      sub { $t->redis('DEL', 'wa:account') },
      qr/redis answered "WRONGTYPE/ ],
    [ 'status stream whose ids are exhausted',
      sub { $t->redis('XADD', 'wa:statuses',
                      '18446744073709551615-18446744073709551615', 'f', 'v') },
      sub { $t->redis('DEL', 'wa:statuses') },
      qr/redis answered "ERR The stream has exhausted the last possible ID/ ],
    [ 'maxmemory reached with noeviction',
      sub { $t->redis('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
            $t->redis('CONFIG', 'SET', 'maxmemory', '1') },
      sub { $t->redis('CONFIG', 'SET', 'maxmemory', '0') },
      qr/redis answered "OOM command not allowed/ ],
);

my $n = 0;
my $expected = 0;

for my $f (@faults) {
    my ($name, $break, $repair, $log) = @$f;
    $n++;

    # the streams hold what earlier cases appended, once each
    my $before = lengths();
    my $keys = dedupe_keys();

    $break->();
    my $body = body($n);
    is $t->post($body)->{status}, 503, "$name: 503";
    ok $t->wait_log($log), "$name: the log names Redis's error";
    is dedupe_keys(), $keys, "$name: no dedupe key left behind";
    is $t->xlen('wa:messages'), $expected,
        "$name: the message appended before the fault is gone again";

    $repair->();
    is $t->post($body)->{status}, 200, "$name: Meta's redelivery: 200";
    $expected++;

    my @m = grep { $_->{msg_id} eq "wamid.AON$n" }
            $t->stream_events('wa:messages');
    is scalar @m, 1, "$name: the message appended once";
    my @s = grep { $_->{msg_id} eq "wamid.OUT$n" }
            $t->stream_events('wa:statuses');
    is scalar @s, 1, "$name: the status appended once";
    my @a = grep { ($_->{event} // '') eq "VERIFIED_ACCOUNT_$n" }
            $t->stream_events('wa:account');
    is scalar @a, 1, "$name: the account event appended once";
    is dedupe_keys(), $keys + 3, "$name: three dedupe keys, one per event";

    is $t->post($body)->{status}, 200, "$name: a second redelivery: 200";
    is $t->xlen('wa:messages'), $expected, "$name: nothing appended twice";
    note "streams before: $before, after: " . lengths();
}

done_testing;
